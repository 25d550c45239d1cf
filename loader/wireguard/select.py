"""Which WireGuard backend to use: `--wireguard auto|kernel|userspace`.

`auto` takes the kernel module when it works here (the faster, polished path) and a userspace
daemon otherwise; an explicit choice that cannot work is an error naming why.
"""

from __future__ import annotations

from netcc.loader.wireguard.backend import Backend, BackendError

CHOICES = ("auto", "kernel", "userspace")


def kernel_backend() -> Backend:
    """The kernel backend (generic netlink through pyroute2)."""
    try:
        from netcc.loader.wireguard.netlink import KernelBackend
    except ImportError as e:
        raise BackendError(f"the kernel backend cannot be imported: {e}") from None
    return KernelBackend()


def userspace_backend() -> Backend:
    from netcc.loader.wireguard.uapi import UserspaceBackend

    return UserspaceBackend()


def named_backend(name: str) -> Backend:
    """The backend called `name` (kernel or userspace), usable here or not."""
    if name == "kernel":
        return kernel_backend()
    if name == "userspace":
        return userspace_backend()
    raise BackendError(f"unknown WireGuard backend {name!r} (expected kernel or userspace)")


def choose_backend(choice: str = "auto") -> Backend:
    """The backend for `choice`; BackendError when it (or, for auto, neither) can work here."""
    if choice not in CHOICES:
        raise BackendError(f"--wireguard {choice}: expected one of {', '.join(CHOICES)}")
    names = ("kernel", "userspace") if choice == "auto" else (choice,)
    reasons = []
    for name in names:
        try:
            backend = named_backend(name)
            reason = backend.available()
        except BackendError as e:
            reason = str(e)
        if reason is None:
            return backend
        reasons.append(f"{name}: {reason}")
    raise BackendError("no usable WireGuard backend (" + "; ".join(reasons) + ")")
