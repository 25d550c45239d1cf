"""Packaging: every Python package of the tree is installed, and the loader image gets every
directory the packages come from (a package left out installs fine in editable mode and
breaks only a wheel or the image)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_directory_is_listed() -> None:
    listed = set(CONFIG["packages"])
    found = set()
    for package, directory in CONFIG["package-dir"].items():
        for init in (ROOT / directory).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / directory)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert sorted(found - listed) == [], "packages missing from pyproject.toml"
    assert sorted(listed - found) == [], "listed packages without an __init__.py"


def test_the_image_copies_every_mapped_directory_and_the_cni_binary() -> None:
    text = (ROOT / "Containerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) /src/\1$", text, re.M))
    assert set(CONFIG["package-dir"].values()) <= copied
    assert "COPY cni /src/cni" in text and "netcc-cni" in text
