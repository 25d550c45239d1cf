"""The `netcc` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from netcc import __version__
from netcc.keys import add_keys_commands
from netcc.lab.cli import add_lab_commands
from netcc.loader.cli import add_load_commands
from netcc.review.cli import add_review_commands


def _read_spec(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise _UserError(f"cannot read {path}: {e.strerror}") from None


class _UserError(Exception):
    pass


def cmd_compile(args: argparse.Namespace) -> int:
    from netcc.pipeline import compile_spec
    from netcc.write import write_tree

    tree = compile_spec(_read_spec(args.spec), args.spec)
    try:
        write_tree(tree, Path(args.output))
    except OSError as e:
        raise _UserError(f"cannot write {args.output}: {e.strerror or e}") from None
    if not args.quiet:
        objects = sum(1 for p in tree if p.endswith(".o"))
        print(f"netcc: wrote {len(tree)} files ({objects} BPF objects) to {args.output}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from netcc.check import stale_files
    from netcc.pipeline import compile_spec

    tree = compile_spec(_read_spec(args.spec), args.spec)
    stale = stale_files(tree, Path(args.out))
    for path, why in stale:
        print(f"{Path(args.out) / path}: {why}")
    if stale:
        print(
            f"netcc: {args.out} is stale: {len(stale)} file(s) differ from what "
            f"{args.spec} compiles to",
            file=sys.stderr,
        )
        return 1
    print(f"netcc: {args.out} is up to date with {args.spec}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from netcc.loader.libbpf import BpfError
    from netcc.loader.lockfile import LockError
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
    from netcc.loader.lockfile import LockError
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
    t.add_argument("--port", type=int, default=0)
    t.add_argument(
        "--protocol",
        default="TCP",
        choices=["TCP", "UDP", "SCTP", "ICMP", "tcp", "udp", "sctp", "icmp"],
    )
    t.set_defaults(func=cmd_trace)
    add_load_commands(sub)
    add_lab_commands(sub)
    add_review_commands(sub)
    add_keys_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    from netcc.build import BuildError
    from netcc.diagnostics import SpecError

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as e:
        name = getattr(args, "spec", "spec")
        for d in e.diagnostics:
            print(d.format(name), file=sys.stderr)
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
