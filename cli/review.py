"""The review commands of the `netcc` command line: review, why, diff and lint.

Bad input is reported as `netcc compile` reports it (`FILE:LINE:COL: error: ...`, exit 1),
except by `diff`, whose exit 1 means "changed": it exits 2 on any error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from netcc.diagnostics import SpecError
from netcc.fsguard import kind_of, shown

EXIT_ERROR = 1
DIFF_ERROR = 2


def _report_spec_error(e: SpecError) -> None:
    for d in e.diagnostics:
        print(d.beside(e.filename).format(e.filename), file=sys.stderr)
    n = sum(1 for d in e.diagnostics if d.severity == "error")
    print(f"netcc: {n} error(s) in {e.filename}", file=sys.stderr)


def _guarded(func: Callable[[argparse.Namespace], int], error_code: int = EXIT_ERROR):
    """Run a command; bad input becomes diagnostics or one `netcc: error:` line, never a
    traceback."""

    def run(args: argparse.Namespace) -> int:
        from netcc.review.source import SourceError
        from netcc.review.why import WhyError

        try:
            return func(args)
        except SpecError as e:
            _report_spec_error(e)
            return error_code
        except (SourceError, WhyError) as e:
            print(f"netcc: error: {e}", file=sys.stderr)
            return error_code
        except OSError as e:
            where = shown(e.filename) if e.filename else "error"
            print(f"netcc: error: {where}: {e.strerror or e}", file=sys.stderr)
            return error_code

    return run


def _print(text: str) -> None:
    """Print to stdout; a reader that stops early (`| head`) is not an error."""
    try:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _emit(text: str, output: str | None, inputs: tuple[str | None, ...] = ()) -> None:
    """Print `text`, or write it to the file `output` (never one of `inputs`)."""
    if output is None:
        _print(text)
        return
    write_report(text.encode("utf-8"), output, [i for i in inputs if i])
    print(f"netcc: wrote {shown(output)}", file=sys.stderr)


def write_report(data: bytes, output: str, inputs: list[str]) -> None:
    """Replace `output` with `data` atomically (a temporary sibling renamed over it).

    `output` must be new or a regular file: a symlink, FIFO, directory or device is refused
    (SourceError), as is the file of a spec being reviewed. An existing file keeps its mode.
    """
    from netcc.review.source import SourceError

    if not output or "\0" in output:
        raise SourceError("-o names no file; name one, or leave -o out to print to stdout")
    try:
        st = os.lstat(output)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise SourceError(
            f"-o {shown(output)} is a {kind_of(st.st_mode)}; name a new or regular file, "
            "or leave -o out to print to stdout"
        )
    for spec in inputs:
        if st is not None and os.path.exists(spec) and os.path.samefile(spec, output):
            raise SourceError(f"-o {shown(output)} is the spec being reviewed; name another file")
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(output).name}.tmp-", dir=Path(output).parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode) if st is not None else 0o644)
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cmd_review(args: argparse.Namespace) -> int:
    from netcc.review.report import build_report
    from netcc.review.report_html import render_html
    from netcc.review.report_md import render_markdown
    from netcc.review.source import load

    report = build_report(load(args.spec, spec=args.with_spec))
    if args.format == "json":
        text = json.dumps(report, indent=2) + "\n"
    elif args.format == "html":
        text = render_html(report)
    else:
        text = render_markdown(report)
    _emit(text, args.output, (args.spec, args.with_spec))
    return 0


def cmd_why(args: argparse.Namespace) -> int:
    from netcc.review.services import format_service, service_target, why_service
    from netcc.review.source import load
    from netcc.review.why import (
        WhyError,
        format_text,
        parse_protocol,
        protocol_name,
        question,
        resolve_address,
        to_json,
        why,
    )

    spec = load(args.spec)
    protocol = protocol_name(parse_protocol(args.protocol))
    try:
        target = service_target(spec.cluster, args.dst, args.port, protocol)
    except ValueError as e:
        raise WhyError(str(e)) from None
    if target is not None:
        src = resolve_address(spec.cluster, args.src)
        doc = why_service(spec.cluster, src, target, spec.sources)
        _print(json.dumps(doc, indent=2) if args.json else format_service(doc, spec.filename))
        return 0
    q = question(spec.cluster, args.src, args.dst, args.port, args.protocol)
    doc = to_json(spec.cluster, why(spec.cluster, q), spec.sources)
    _print(json.dumps(doc, indent=2) if args.json else format_text(doc, spec.filename))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from netcc.review.diff import diff, format_text
    from netcc.review.source import load

    old, new = load(args.old), load(args.new)
    d = diff(old.cluster, new.cluster)
    _print(json.dumps(d.to_json(), indent=2) if args.json else format_text(d))
    return 1 if d.changed else 0


def cmd_lint(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from netcc.review.lint import lint
    from netcc.review.source import load

    spec = load(args.spec)
    found = lint(spec.cluster, spec.sources)
    if args.strict:  # warnings fail CI; notes stay informational
        found = [replace(d, severity="error") if d.severity == "warning" else d for d in found]
    if found:
        _print("".join(d.beside(spec.filename).format(spec.filename) + "\n" for d in found))
    kind = "error" if args.strict else "warning"
    failing = [d for d in found if d.severity != "note"]
    notes = len(found) - len(failing)
    also = f", {notes} note(s)" if notes else ""
    print(f"netcc: {len(failing)} {kind}(s){also} in {shown(spec.filename)}", file=sys.stderr)
    return 1 if args.strict and failing else 0


def port_argument(text: str) -> int:
    """argparse type for --port: ASCII decimal digits only (int() takes '٦' and ' 7_0')."""
    from netcc.review.why import parse_port

    try:
        return parse_port(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_review_commands(sub: argparse._SubParsersAction) -> None:
    """Register `review`, `why`, `diff` and `lint`."""
    r = sub.add_parser(
        "review",
        help="per-workload reachability, exposure and isolation, as Markdown, HTML or JSON",
        description="Review a spec offline: who may reach each workload on which ports and whom "
        "it may reach (with the policy and rule behind each allow), isolation, exposure and "
        "external CIDRs. OUT works when it carries its spec, or with --spec.",
    )
    r.add_argument("spec", metavar="SPEC|OUT")
    r.add_argument(
        "--spec",
        dest="with_spec",
        metavar="SPEC",
        help="with OUT: the spec OUT was compiled from (its digest is checked against the lock)",
    )
    r.add_argument("--format", choices=["md", "html", "json"], default="md")
    r.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    r.set_defaults(func=_guarded(cmd_review))

    w = sub.add_parser(
        "why",
        help="the verdict for one connection, with the rules (or default deny) on both sides",
    )
    w.add_argument("spec", metavar="SPEC")
    w.add_argument("--from", dest="src", required=True, metavar="SRC", help="IP or ns/workload")
    w.add_argument(
        "--to",
        dest="dst",
        required=True,
        metavar="DST",
        help="IP or ns/workload; a service: svc:NS/NAME, its cluster IP, or a node (name or "
        "address) with a nodePort as --port",
    )
    w.add_argument("--port", type=port_argument, metavar="P", help="required for TCP, UDP and SCTP")
    w.add_argument(
        "--protocol", default="TCP", metavar="PROTO", help="TCP (default), UDP, SCTP, ICMP or 0-255"
    )
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=_guarded(cmd_why))

    d = sub.add_parser(
        "diff",
        help="connections newly allowed and newly denied; exit 0 unchanged, 1 changed, 2 error",
        description="OLD and NEW are specs, OUT directories carrying their spec, or "
        "git:REV:PATH (git show REV:PATH in the current directory's repository).",
    )
    d.add_argument("old", metavar="OLD")
    d.add_argument("new", metavar="NEW")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_guarded(cmd_diff, DIFF_ERROR))

    lt = sub.add_parser(
        "lint",
        help="policies and rules that do nothing, shadowed rules, open namespaces, classes",
    )
    lt.add_argument("spec", metavar="SPEC")
    lt.add_argument(
        "--strict", action="store_true", help="warnings are errors (exit 1); notes stay notes"
    )
    lt.set_defaults(func=_guarded(cmd_lint))
