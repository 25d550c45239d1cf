"""The `netcc` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from netcc import __version__
from netcc.cli.ipsec import add_ipsec_commands, rotation_note
from netcc.cli.lab import add_lab_commands
from netcc.cli.load import add_load_commands
from netcc.cli.observe import add_observe_command
from netcc.cli.review import add_review_commands, port_argument
from netcc.keys import add_keys_commands


def _read_spec(path: str) -> bytes:
    """The spec's bytes: bounded in size, and a FIFO nobody writes to reads as empty."""
    from netcc.fsguard import read_input, shown

    try:
        return read_input(path)
    except ValueError:  # a NUL byte in the path
        raise _UserError(f"cannot read {shown(path)}: not a valid path") from None
    except OSError as e:
        raise _UserError(f"cannot read {shown(path)}: {e.strerror or e}") from None


class _UserError(Exception):
    pass


def _bundle(spec: bytes, path: str) -> Any:
    """The manifests the spec's sources name, read beside the spec (and from stdin)."""
    from netcc.sources.bundle import SourceError
    from netcc.sources.readers import DiskReader, bundle_for

    try:
        return bundle_for(spec, path, DiskReader(Path(path).parent))
    except SourceError as e:
        raise _UserError(str(e)) from None


def _print_sources(tree: dict[str, bytes], spec: str, quiet: bool) -> None:
    """What the compile took from the spec's sources, and its notes, on stderr."""
    from netcc.sources.bundle import SOURCES_IN_OUT, report

    if quiet or SOURCES_IN_OUT not in tree:
        return
    summary, notes = report(tree[SOURCES_IN_OUT])
    base = spec.rsplit("/", 1)[0] + "/" if "/" in spec else ""
    for n in notes:  # manifest names are relative to the spec's directory
        print(n if n.startswith(("<", "/")) else base + n, file=sys.stderr)
    if summary:
        print(f"netcc: {summary}", file=sys.stderr)


def cmd_compile(args: argparse.Namespace) -> int:
    """Compile SPEC into OUT, which is refused before compiling unless netcc may replace it."""
    from netcc.fsguard import shown
    from netcc.pipeline import compile_spec
    from netcc.write.tree import OutputError, prepare_output, write_tree

    protect = [args.spec]
    try:
        prepare_output(args.output, protect)  # refused before compiling: nothing to waste
        spec = _read_spec(args.spec)
        tree = compile_spec(spec, args.spec, _bundle(spec, args.spec))
        _print_sources(tree, args.spec, args.quiet)
        written = write_tree(tree, args.output, protect)
    except OutputError as e:
        raise _UserError(f"{e}; nothing written") from None
    except OSError as e:
        where = shown(e.filename or args.output)
        raise _UserError(f"cannot write {where}: {e.strerror or e}; nothing written") from None
    if not args.quiet and not written:
        print(f"netcc: {shown(args.output)} is up to date ({len(tree)} files)")
    elif not args.quiet:
        objects = sum(1 for p in tree if p.endswith(".o"))
        print(f"netcc: wrote {len(tree)} files ({objects} BPF objects) to {shown(args.output)}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when OUT is exactly the tree SPEC compiles to, 1 listing what differs."""
    from netcc.fsguard import shown
    from netcc.pipeline import compile_spec
    from netcc.write.check import stale_files

    if not args.out:
        raise _UserError("OUT is empty (an unset variable?); name the directory to check")
    spec = _read_spec(args.spec)
    tree = compile_spec(spec, args.spec, _bundle(spec, args.spec))
    try:
        stale = stale_files(tree, Path(args.out))
    except OSError as e:
        where = shown(e.filename or args.out)
        raise _UserError(f"cannot read {where}: {e.strerror or e}") from None
    for path, why in stale:
        print(f"{shown(Path(args.out) / path)}: {why}")
    note = rotation_note(tree, args.out)
    if note:
        print(f"netcc: ipsec rollout: {note}", file=sys.stderr)
    if stale:
        print(
            f"netcc: {shown(args.out)} is stale: {len(stale)} file(s) differ from what "
            f"{shown(args.spec)} compiles to",
            file=sys.stderr,
        )
        return 1
    print(f"netcc: {shown(args.out)} is up to date with {shown(args.spec)}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from netcc.contract.lock import LockError
    from netcc.loader.libbpf import BpfError
    from netcc.loader.verify import format_report, verify

    try:
        report = verify(Path(args.out))
    except LockError as e:
        raise _UserError(str(e)) from None
    except BpfError as e:
        print(e.log, file=sys.stderr)
        raise _UserError(f"kernel refused the datapath: {e}") from None
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from netcc.contract.lock import LockError
    from netcc.loader.trace import format_trace, trace

    try:
        hops = trace(Path(args.out), args.src, args.dst, args.port, args.protocol)
    except LockError as e:
        raise _UserError(str(e)) from None
    print(format_trace(hops, args.src, args.dst, args.port, args.protocol))
    return 0 if all(h.passed for h in hops) else 4


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="netcc", description=__doc__)
    ap.add_argument("--version", action="version", version=f"netcc {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile a spec into an artifact directory")
    c.add_argument("spec")
    c.add_argument("-o", "--output", required=True, metavar="OUT")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=cmd_compile)
    k = sub.add_parser("check", help="exit 0 when OUT is exactly what SPEC compiles to")
    k.add_argument("spec")
    k.add_argument("out")
    k.set_defaults(func=cmd_check)
    v = sub.add_parser("verify", help="load OUT's objects and every node's maps in the kernel")
    v.add_argument("out")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_verify)
    t = sub.add_parser(
        "trace", help="run one packet through OUT's datapath in the kernel (BPF_PROG_TEST_RUN)"
    )
    t.add_argument("out")
    t.add_argument("--from", dest="src", required=True, metavar="IP")
    t.add_argument("--to", dest="dst", required=True, metavar="IP")
    t.add_argument("--port", type=port_argument, default=0)
    t.add_argument(
        "--protocol",
        default="TCP",
        choices=["TCP", "UDP", "SCTP", "ICMP", "tcp", "udp", "sctp", "icmp"],
    )
    t.set_defaults(func=cmd_trace)
    add_load_commands(sub)
    add_lab_commands(sub)
    add_observe_command(sub)
    add_review_commands(sub)
    add_keys_commands(sub)
    add_ipsec_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run `netcc ARGV`: 0 on success, 1 on bad input, 2 on build errors, 3 on internal ones."""
    from netcc.build.clang import BuildError
    from netcc.diagnostics import SpecError
    from netcc.fsguard import shown

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as e:
        name = shown(getattr(args, "spec", "spec"))
        for d in e.diagnostics:
            print(d.beside(name).format(name), file=sys.stderr)
        n = sum(1 for d in e.diagnostics if d.severity == "error")
        print(f"netcc: {n} error(s); nothing written", file=sys.stderr)
        return 1
    except _UserError as e:
        print(f"netcc: error: {e}", file=sys.stderr)
        return 1
    except BuildError as e:
        print(f"netcc: build error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        print(
            f"netcc: internal error: {type(e).__name__}: {e}\n"
            "please report this with the spec that caused it",
            file=sys.stderr,
        )
        return 3
