"""`netcc ipsec`: cluster keys for IPsec, and whether a change of keys is safe to roll out.

- `netcc ipsec keygen FILE [--key-id N] [--force]` writes a fresh cluster key (mode 0600 from
  its creation, never over an existing file without --force) and prints its id and
  fingerprint, with the `keys:` entry for the spec; never the key.
- `netcc ipsec fingerprint FILE` prints a key file's id and fingerprint (and the entry).
- `netcc ipsec rotation DEPLOYED NEW` says whether rolling NEW out over DEPLOYED is safe, which
  phase it is and what comes next (`netcc.contract.ipsecrollout`); each is an OUT directory
  (its `nodes/*/ipsec.json`, checked against its lock), a spec, or git:REV:PATH. Exit 0 safe,
  1 unsafe, 2 on any error.

The key file format, fingerprints and derivation are the contract's (`netcc.contract.ipseckey`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
from pathlib import Path

from netcc.contract.files import shown
from netcc.contract.ipsec import KEY_ID_MAX, KEY_ID_MIN
from netcc.contract.ipseckey import ClusterKey, IPsecKeyError, generate, key_text, read_key

UNSAFE, ERROR = 1, 2


class _UserError(Exception):
    pass


def key_id_argument(text: str) -> int:
    """argparse type for --key-id: 1-255, ASCII digits only."""
    if not text.isascii() or not text.isdigit() or not KEY_ID_MIN <= int(text) <= KEY_ID_MAX:
        raise argparse.ArgumentTypeError(f"expected a key id {KEY_ID_MIN}-{KEY_ID_MAX}")
    return int(text)


def _create(name: str, data: str) -> None:
    """Write `data` to a new file `name` (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600 from the start,
    never an existing file or a planted link); removed again on any failure."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, 0o600)
    try:
        with open(fd, "w", encoding="ascii") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def write_key(path: str, key: ClusterKey, force: bool = False) -> None:
    """Write `key` to the file `path`: created with mode 0600 and O_EXCL; with `force`, a new
    file of a random name beside it replaces it (rename), never written through a link."""
    if not force:
        try:
            _create(path, key_text(key))
        except FileExistsError:
            raise _UserError(
                f"{shown(path)} exists; nothing written (--force replaces it, and the key in "
                "it is lost)"
            ) from None
        return
    target = Path(path)
    tmp = str(target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp")
    _create(tmp, key_text(key))
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _entry(key: ClusterKey, state: str) -> str:
    return f'- {{id: {key.id}, state: {state}, fingerprint: "{key.fingerprint}"}}'


def cmd_keygen(args: argparse.Namespace) -> int:
    if not args.file or "\0" in args.file:
        raise _UserError("FILE is empty (an unset variable?); name the key file to write")
    key = generate(args.key_id)
    write_key(args.file, key, args.force)
    print(f"netcc: wrote key {key.id} to {shown(args.file)} (mode 0600)")
    print(f"key {key.id} fingerprint {key.fingerprint}")
    print(
        "# spec.encryption.ipsec.keys entry (state: accept first when nodes already send with "
        "another key; the key itself is only in the file)"
    )
    print(_entry(key, "send"))
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    key = read_key(args.file)
    print(f"key {key.id} fingerprint {key.fingerprint}")
    print(_entry(key, "send"))
    return 0


def _rollout(arg: str):  # -> Rollout
    """The rollout of an OUT directory (its plans) or of a spec (compiled in memory)."""
    from netcc.contract.ipsecrollout import read_deployed
    from netcc.contract.lock import LOCK_NAME
    from netcc.emit.ipsec import cluster_rollout
    from netcc.review.source import load

    if not arg.startswith("git:") and Path(arg).is_dir() and (Path(arg) / LOCK_NAME).exists():
        return read_deployed(arg)
    return cluster_rollout(load(arg).cluster)


def rotation_note(tree: dict[str, bytes], out: str | Path) -> str | None:
    """For `netcc check SPEC OUT`: when the keys (or acceptPlaintext) of the compiled `tree`
    differ from those of the OUT directory `out`, whether rolling the tree out over it is safe
    and what comes next (`rollout_step`); None when nothing changes or `out` is unreadable
    (check reports that itself)."""
    from netcc.contract.ipsec import IPsecFormatError, from_doc
    from netcc.contract.ipsecrollout import read_deployed, rollout_of_plans, rollout_step
    from netcc.contract.lock import LockError

    try:
        deployed = read_deployed(out)
        plans = [
            from_doc(json.loads(d)) for p, d in sorted(tree.items()) if p.endswith("/ipsec.json")
        ]
        new = rollout_of_plans(plans)
    except (LockError, IPsecFormatError, ValueError):
        return None
    return None if deployed.same_keys(new) else rollout_step(deployed, new).text()


def cmd_rotation(args: argparse.Namespace) -> int:
    from netcc.contract.ipsecrollout import rollout_step

    deployed = _rollout(args.deployed)
    new = _rollout(args.new)
    step = rollout_step(deployed, new)
    if args.json:
        doc = {"deployed": deployed.text(), "new": new.text(), **step.to_json()}
        print(json.dumps(doc, indent=2))
    else:
        print(f"deployed: {deployed.text()}")
        print(f"new:      {new.text()}")
        print(step.text())
    return 0 if step.safe else UNSAFE


def _guarded(func, error_code: int = 1):
    """Run a command; bad input is one `netcc: error:` line (or diagnostics), never a
    traceback, and never a key."""

    def run(args: argparse.Namespace) -> int:
        from netcc.contract.ipsec import IPsecFormatError
        from netcc.contract.lock import LockError
        from netcc.diagnostics import SpecError
        from netcc.review.source import SourceError

        try:
            return func(args)
        except SpecError as e:
            for d in e.diagnostics:
                print(d.beside(e.filename).format(e.filename), file=sys.stderr)
            return error_code
        except (_UserError, IPsecKeyError, IPsecFormatError, LockError, SourceError) as e:
            print(f"netcc: error: {e}", file=sys.stderr)
            return error_code
        except OSError as e:
            where = shown(e.filename) if e.filename else "error"
            print(f"netcc: error: {where}: {e.strerror or e}", file=sys.stderr)
            return error_code

    return run


def add_ipsec_commands(sub: argparse._SubParsersAction) -> None:
    """Register `ipsec keygen`, `ipsec fingerprint` and `ipsec rotation`."""
    ipsec = sub.add_parser("ipsec", help="IPsec cluster keys and key rotation")
    commands = ipsec.add_subparsers(dest="ipsec_command", required=True)
    g = commands.add_parser(
        "keygen",
        help="write a fresh cluster key (mode 0600, never printed); print its id and fingerprint",
    )
    g.add_argument("file", metavar="FILE")
    g.add_argument("--key-id", type=key_id_argument, default=1, metavar="N", help="1-255")
    g.add_argument("--force", action="store_true", help="replace an existing FILE")
    g.set_defaults(func=_guarded(cmd_keygen))
    f = commands.add_parser("fingerprint", help="print a key file's id and fingerprint")
    f.add_argument("file", metavar="FILE")
    f.set_defaults(func=_guarded(cmd_fingerprint))
    r = commands.add_parser(
        "rotation",
        help="whether NEW's keys are safe to roll out over DEPLOYED's; exit 0 safe, 1 unsafe, "
        "2 error",
        description="DEPLOYED and NEW are OUT directories, specs, or git:REV:PATH.",
    )
    r.add_argument("deployed", metavar="DEPLOYED")
    r.add_argument("new", metavar="NEW")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_guarded(cmd_rotation, ERROR))
