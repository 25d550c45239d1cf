"""`netcc keys generate`: WireGuard key pairs for the spec's nodes.

`netcc keys generate --out DIR` writes one key pair per node (`NODE.key`, mode 0600, and
`NODE.pub`) into a directory only its owner can read, and prints the `nodes:` block of
`spec.encryption.wireguard` to paste into the spec. Private keys are never printed and never
written anywhere else. The keys themselves (their format, generation, and the public key of a
private one: the `cryptography` package's X25519) are the contract's, `netcc.contract.wgkey`,
which the loader uses too.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import secrets
import stat
import sys
from pathlib import Path

from netcc.contract.wgkey import generate_private_key, public_key
from netcc.fsguard import kind_of, read_input, shown

KEY_SUFFIX, PUB_SUFFIX = ".key", ".pub"
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


class _UserError(Exception):
    pass


def _spec_nodes(path: str) -> list[str]:
    """Node names of a spec, read without validating the rest (its keys are not there yet)."""
    from netcc.diagnostics import SpecError
    from netcc.load.document import load_yaml

    try:
        doc, _ = load_yaml(read_input(path), path)
    except SpecError as e:
        raise _UserError(f"{shown(path)}: {e.diagnostics[0].message}") from None
    except ValueError:  # a NUL byte in the path
        raise _UserError(f"cannot read {shown(path)}: not a valid path") from None
    except OSError as e:
        raise _UserError(f"cannot read {shown(path)}: {e.strerror or e}") from None
    spec = doc.get("spec") if isinstance(doc, dict) else None
    nodes = spec.get("nodes") if isinstance(spec, dict) else None
    if not isinstance(nodes, list):
        raise _UserError(f"{shown(path)}: no spec.nodes list")
    return [n.get("name") for n in nodes if isinstance(n, dict)]


def _check_names(names: list[object]) -> list[str]:
    if not names:
        raise _UserError("no nodes given")
    for name in names:
        if not isinstance(name, str) or not _NODE_NAME.fullmatch(name) or len(name) > 253:
            raise _UserError(f"{name!r}: not a node name (DNS-1123 subdomain)")
    if len(set(names)) != len(names):
        raise _UserError("a node is named twice")
    return [str(n) for n in names]


def _open_key_dir(out: Path) -> int:
    """A directory fd on `out`, created 0700 when missing; a symlink or non-directory refused.

    Missing directories are created along `out`'s real path (so `a/../keys` never creates
    `a`). Every key file is then created relative to this fd, so swapping `out` for a link
    after this check changes nothing.
    """
    # `a/../link` names `link` once `a` exists (the kernel) and always (realpath): refuse both.
    lexical = Path(os.path.normpath(os.path.abspath(out)))
    if out.is_symlink() or lexical.is_symlink():
        raise _UserError(f"{shown(out)} is a symlink; give the key directory itself")
    real = Path(os.path.realpath(out))
    if os.path.lexists(real) and not real.is_dir():
        raise _UserError(f"{shown(out)} exists and is not a directory")
    if not os.path.lexists(real):
        real.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(real, 0o700)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _UserError(f"{shown(out)} is not a directory (a symlink?)") from None
        raise
    if os.fstat(fd).st_mode & 0o077:
        print(f"netcc: warning: {shown(out)} is readable by others; chmod 700 it", file=sys.stderr)
    return fd


def _existing(dirfd: int, name: str) -> os.stat_result | None:
    """lstat of `name` in the key directory, or None when there is nothing by that name."""
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _check_targets(dirfd: int, out: Path, nodes: list[str], force: bool) -> None:
    """Refuse, before writing anything, key paths that are links or that exist without force."""
    existing = []
    for node in nodes:
        for name in (f"{node}{KEY_SUFFIX}", f"{node}{PUB_SUFFIX}"):
            st = _existing(dirfd, name)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise _UserError(
                    f"{shown(out / name)} is a {kind_of(st.st_mode)}, not a regular file; "
                    "remove it (netcc never writes a key through a link); nothing written"
                )
            if st is not None and name.endswith(KEY_SUFFIX):
                existing.append(node)
    if existing and not force:
        raise _UserError(
            f"{shown(out)}: key files exist for {', '.join(existing)}; nothing written "
            "(--force replaces them)"
        )


def _write_file(dirfd: int, name: str, text: str, mode: int, replace: bool) -> None:
    """Create `name` in the key directory with `mode` from the first byte on.

    The data goes to a new file of a random name (O_CREAT|O_EXCL|O_NOFOLLOW: never an existing
    file or a planted link), which is then renamed over `name` (`replace`) or hard-linked to it,
    which fails if `name` exists (a key is never overwritten without --force).
    """
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode, dir_fd=dirfd)
    try:
        with open(fd, "w") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text + "\n")
        if replace:
            os.replace(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        else:
            os.link(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd, follow_symlinks=False)
            os.unlink(tmp, dir_fd=dirfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dirfd)
        raise


def generate(
    out: str | Path, nodes: list[str], force: bool = False, key_path: str | None = None
) -> dict[str, dict[str, str]]:
    """Write a key pair per node into `out`; the spec's `nodes:` entries, by node name.

    Private keys are 0600 and never written through a symlink; `out` is created 0700 and
    refused when it is a symlink; an existing key is replaced only with `force`.
    """
    out = Path(out)
    dirfd = _open_key_dir(out)
    try:
        _check_targets(dirfd, out, nodes, force)
        entries = {}
        for node in nodes:
            private = generate_private_key()
            path = out / f"{node}{KEY_SUFFIX}"
            _write_file(dirfd, path.name, private, 0o600, replace=force)
            public = public_key(private)
            _write_file(dirfd, f"{node}{PUB_SUFFIX}", public, 0o644, replace=True)
            where = key_path.replace("{node}", node) if key_path else str(path.resolve())
            entries[node] = {"publicKey": public, "privateKeyFile": where}
    finally:
        os.close(dirfd)
    return entries


def nodes_block(entries: dict[str, dict[str, str]]) -> str:
    """The `nodes:` block of spec.encryption.wireguard (JSON strings are YAML scalars)."""
    lines = ["nodes:"]
    for node, e in entries.items():
        lines.append(f"  {node}:")
        lines.append(f"    publicKey: {json.dumps(e['publicKey'])}")
        lines.append(f"    privateKeyFile: {json.dumps(e['privateKeyFile'])}")
    return "\n".join(lines)


def cmd_generate(args: argparse.Namespace) -> int:
    try:
        if not args.out or "\0" in args.out:
            raise _UserError("--out is empty (an unset variable?); name the key directory")
        if args.key_path is not None and not args.key_path.startswith("/"):
            raise _UserError("--key-path must be an absolute path (the file on each node)")
        names: list[object] = (
            _spec_nodes(args.spec)
            if args.spec is not None
            else [n for n in args.nodes.split(",") if n]
        )
        nodes = _check_names(names)
        entries = generate(args.out, nodes, args.force, args.key_path)
    except _UserError as e:
        print(f"netcc: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"netcc: error: {shown(e.filename or args.out)}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"# spec.encryption.wireguard ({len(nodes)} key pairs in {shown(args.out)})")
    print(nodes_block(entries))
    return 0


def add_keys_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `keys generate` to the `netcc` command's subparsers."""
    keys = subparsers.add_parser("keys", help="WireGuard key pairs for the spec's nodes")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    g = sub.add_parser(
        "generate",
        help="write one key pair per node (NODE.key 0600, NODE.pub), print the `nodes:` block",
    )
    g.add_argument("--out", required=True, metavar="DIR", help="directory for the key files")
    which = g.add_mutually_exclusive_group(required=True)
    which.add_argument("--spec", metavar="SPEC", help="every node of this spec")
    which.add_argument("--nodes", metavar="A,B", help="comma-separated node names")
    g.add_argument("--force", action="store_true", help="replace existing key files")
    g.add_argument(
        "--key-path",
        metavar="PATH",
        help="privateKeyFile to print, `{node}` replaced by the node's name "
        "(default: the generated file's absolute path)",
    )
    g.set_defaults(func=cmd_generate)
