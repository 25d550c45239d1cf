"""WireGuard keys: their text format, and the public key of a private key.

A WireGuard private key is 32 random bytes clamped as RFC 7748 says; its public key is the
X25519 product of that scalar and the base point u=9. Both travel as base64 of the 32 bytes
(44 characters), as `wg genkey` and `wg pubkey` print them, and a key file holds one key on one
line. The curve arithmetic is the `cryptography` package's (OpenSSL's X25519): netcc implements
none of it. The compiler generates keys with it (`netcc keys generate`), the loader checks a
node's key file against the spec's public key and derives public keys from what a device
reports.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from types import ModuleType

KEY_BYTES = 32
BASE_POINT = (9).to_bytes(KEY_BYTES, "little")  # u=9, RFC 7748 section 4.1


class KeyFormatError(ValueError):
    """Not a WireGuard key (bad base64 or not 32 bytes)."""


def _curve() -> ModuleType:
    """The `cryptography` package's X25519, imported when a key is made or derived: a compile
    only checks keys' text, and need not pay for loading OpenSSL."""
    from cryptography.hazmat.primitives.asymmetric import x25519 as curve

    return curve


def x25519(scalar: bytes, u: bytes) -> bytes:
    """RFC 7748 section 5: X25519(k, u), the scalar clamped, u's top bit ignored.

    KeyFormatError for inputs that are not 32 bytes, and for a u of small order (the
    all-zero result, which RFC 7748 section 6.1 lets an implementation refuse)."""
    if len(scalar) != KEY_BYTES or len(u) != KEY_BYTES:
        raise KeyFormatError("X25519 takes 32-byte scalars and u-coordinates")
    curve = _curve()
    try:
        return curve.X25519PrivateKey.from_private_bytes(scalar).exchange(
            curve.X25519PublicKey.from_public_bytes(u)
        )
    except ValueError as e:
        raise KeyFormatError(f"X25519: {e}") from None


def public_key_bytes(private: bytes) -> bytes:
    """The public key of the 32 bytes of a private key."""
    if len(private) != KEY_BYTES:
        raise KeyFormatError(f"{len(private)} bytes, expected {KEY_BYTES}")
    return _curve().X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def _clamp(scalar: bytes) -> bytes:
    """The scalar as RFC 7748 section 5 uses it, and as `wg genkey` stores it."""
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return bytes(k)


def decode_key(text: str) -> bytes:
    """The 32 bytes of a base64 WireGuard key (surrounding whitespace ignored);
    KeyFormatError otherwise."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError("not base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyFormatError(f"{len(raw)} bytes, expected {KEY_BYTES}")
    return raw


def encode_key(raw: bytes) -> str:
    """The base64 text of a key's 32 bytes."""
    return base64.b64encode(raw).decode()


def generate_private_key() -> str:
    """A new private key (base64), clamped like `wg genkey`."""
    return encode_key(_clamp(_curve().X25519PrivateKey.generate().private_bytes_raw()))


def public_key(private_key: str) -> str:
    """The public key (base64) of a private key (base64), as `wg pubkey` computes it."""
    return encode_key(public_key_bytes(decode_key(private_key)))


def read_private_key(path: str | Path) -> str:
    """The base64 private key in the key file `path` (one line, as `wg genkey` writes it)."""
    text = Path(path).read_text().strip()
    decode_key(text)
    return text
