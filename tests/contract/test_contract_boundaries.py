"""The compiler and the loader meet only in `netcc.contract`: checked on every module's imports.

- the compiler (`netcc`: compiler/) imports nothing from the loader, the lab or the CLI (but
  `netcc/__main__.py`, which is `python -m netcc`: the CLI);
- the loader (`netcc.loader`) imports, of netcc, only the contract, itself and `__version__`;
- the contract (`netcc.contract`) imports neither side.

Imports are read from the source (ast), all of them: at the top, inside functions, under
`TYPE_CHECKING`. No module is executed.
"""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

import pytest

# The packages whose sources are checked, and the directory each is imported from.
ROOTS = ("netcc", "netcc.contract", "netcc.loader", "netcc.lab", "netcc.cli")
COMPILER_MAY_NOT = ("netcc.loader", "netcc.lab", "netcc.cli")
LOADER_MAY = ("netcc.contract", "netcc.loader")
CONTRACT_MAY = ("netcc.contract",)


def _root_dirs() -> dict[str, Path]:
    return {pkg: Path(str(resources.files(pkg))).resolve() for pkg in ROOTS}


def modules() -> dict[str, Path]:
    """Every module of the checked packages, by name: each file belongs to the innermost
    package root holding it (installed as a wheel, `netcc` holds the others)."""
    roots = _root_dirs()
    found: dict[str, Path] = {}
    for pkg, root in roots.items():
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            owner = max(
                (p for p, r in roots.items() if path.is_relative_to(r)),
                key=lambda p: len(roots[p].parts),
            )
            if owner != pkg:
                continue
            rel = path.relative_to(root).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            found[".".join((pkg, *rel))] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The absolute names `path` (module `name`) imports; for `from A import B`, both A and
    A.B (B may be a module)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            out.add(source)
            out |= {f"{source}.{alias.name}" for alias in node.names}
    return out


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _netcc(names: set[str]) -> set[str]:
    return {n for n in names if _within(n, ("netcc",))}


MODULES = modules()


def _side(prefix: str, exclude: tuple[str, ...] = ()) -> list[str]:
    return sorted(m for m in MODULES if _within(m, (prefix,)) and not _within(m, exclude))


# `python -m netcc` runs the CLI: netcc/__main__.py is the CLI's entry point, not the compiler.
ENTRY_POINT = "netcc.__main__"
COMPILER = [
    m
    for m in _side("netcc", exclude=("netcc.contract", "netcc.loader", "netcc.lab", "netcc.cli"))
    if m != ENTRY_POINT
]
LOADER = _side("netcc.loader")
CONTRACT = _side("netcc.contract")


def test_every_side_is_found() -> None:
    """The walk finds the modules it checks (a test that checks nothing would pass)."""
    assert "netcc.pipeline" in COMPILER and "netcc.emit.tunnels" in COMPILER
    assert "netcc.loader.apply" in LOADER and "netcc.loader.wireguard.apply" in LOADER
    assert {"netcc.contract.maps", "netcc.contract.lock", "netcc.contract.tunnel"} <= set(CONTRACT)
    assert not set(COMPILER) & set(LOADER)


@pytest.mark.parametrize("module", COMPILER)
def test_compiler_imports_no_runtime_side(module: str) -> None:
    bad = {n for n in imports(module, MODULES[module]) if _within(n, COMPILER_MAY_NOT)}
    assert not bad, f"{module} (compiler) imports {sorted(bad)}"


@pytest.mark.parametrize("module", LOADER)
def test_loader_imports_only_the_contract(module: str) -> None:
    bad = {
        n
        for n in _netcc(imports(module, MODULES[module]))
        if n not in ("netcc", "netcc.__version__") and not _within(n, LOADER_MAY)
    }
    assert not bad, f"{module} (loader) imports compiler internals {sorted(bad)}"


@pytest.mark.parametrize("module", CONTRACT)
def test_contract_imports_neither_side(module: str) -> None:
    bad = {
        n
        for n in _netcc(imports(module, MODULES[module]))
        if n != "netcc" and not _within(n, CONTRACT_MAY)
    }
    assert not bad, f"{module} (contract) imports {sorted(bad)}"


def test_import_reader_sees_every_form(tmp_path: Path) -> None:
    """Relative imports, imports in functions and under TYPE_CHECKING all count."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    src = pkg / "mod.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from .. import up\n"
        "if TYPE_CHECKING:\n"
        "    from netcc.plan.planner import plan\n"
        "def f():\n"
        "    import netcc.keys\n"
        "    from netcc import fsguard\n"
    )
    got = imports("netcc.loader.mod", src)
    assert {"netcc.loader.sibling", "netcc.up", "netcc.plan.planner", "netcc.keys"} <= got
    assert "netcc.fsguard" in got
