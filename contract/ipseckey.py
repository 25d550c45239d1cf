"""IPsec cluster keys: their file, their fingerprint, and the key of each SA derived from them.

A cluster key is 32 random bytes with an id (1-255). It lives in one file on every node, never
in the spec or OUT; the manifests mount it from a Kubernetes Secret, one item per key
(`key-ID`, see `netcc.contract.ipsec.key_file`). The file is one line of text:

    netcc-ipsec-v1 ID BASE64

`netcc-ipsec-v1` names the format, ID is the key id in decimal and BASE64 the 32 bytes (44
characters, as WireGuard keys are written, so that the spec's and the diagnostics' scans for
key-shaped text catch one pasted where it does not belong). `netcc ipsec keygen` writes it
(mode 0600, created so from the start, never printed). Reading refuses anything else, and no
message quotes the file's content.

The fingerprint of a key (`fingerprint`) is the first 16 bytes, in hex, of
HMAC-SHA256(key, "netcc-ipsec-v1 fingerprint" || id as 4 bytes): it names the key without
revealing it. The spec records it per key id (`spec.encryption.ipsec.keys`), OUT carries it in
every `ipsec.json`, and the node refuses a key file whose fingerprint is not the plan's
(`check_key`): a changed key under an unchanged id is an error, never a silent mismatch between
nodes. A new key takes a new id.

Every SA has a key of its own, derived with HKDF-SHA256 (RFC 5869; the `cryptography`
package's, `hkdf_sha256`) from the cluster key, with the salt "netcc-ipsec-v1" and an `info`
binding everything that names the SA (`sa_info`): the key id, the AEAD (name, key and ICV
bits), the source and destination node addresses, the SPI and the direction's node names. Both
ends of a tunnel derive the same key for an SA; no two SAs share one (their infos differ);
a new key id gives new keys. The output is the AES key and the 4-byte salt RFC 4106 appends
(20 bytes for AES-GCM-128, 36 for AES-GCM-256), as XFRM takes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from netcc.contract.ipsec import KEY_ID_MAX, KEY_ID_MIN, Aead, KeyRef, SAState

MAGIC = "netcc-ipsec-v1"
SECRET_BYTES = 32
HKDF_SALT = MAGIC.encode()
FINGERPRINT_LABEL = b"netcc-ipsec-v1 fingerprint"
SA_LABEL = b"netcc-ipsec-v1 sa"
FINGERPRINT_BYTES = 16
MAX_KEY_FILE_BYTES = 4096


class IPsecKeyError(ValueError):
    """A key file that is not one, or a key that is not the one the plan names. Messages name
    files, ids and fingerprints, never key material."""


@dataclass(frozen=True)
class ClusterKey:
    """A cluster key and its id; its repr shows the id and fingerprint only."""

    id: int
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, int) or not KEY_ID_MIN <= self.id <= KEY_ID_MAX:
            raise IPsecKeyError(f"key id {self.id!r}: expected {KEY_ID_MIN}-{KEY_ID_MAX}")
        if not isinstance(self.secret, bytes) or len(self.secret) != SECRET_BYTES:
            raise IPsecKeyError(f"a cluster key is {SECRET_BYTES} bytes")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self)

    def __repr__(self) -> str:
        return f"ClusterKey(id={self.id}, fingerprint={self.fingerprint})"


def generate(key_id: int) -> ClusterKey:
    """A fresh key from the system's CSPRNG."""
    return ClusterKey(key_id, os.urandom(SECRET_BYTES))


def fingerprint(key: ClusterKey) -> str:
    """32 hex digits naming `key` (see the module's text); not a secret."""
    mac = hmac.new(key.secret, FINGERPRINT_LABEL + struct.pack(">I", key.id), hashlib.sha256)
    return mac.digest()[:FINGERPRINT_BYTES].hex()


def key_text(key: ClusterKey) -> str:
    """The key file's content (the one place a key is ever turned into text)."""
    return f"{MAGIC} {key.id} {base64.b64encode(key.secret).decode()}\n"


def parse_key(data: bytes, where: str = "key file") -> ClusterKey:
    """The key in a key file's bytes; IPsecKeyError, naming `where` only, otherwise."""
    bad = IPsecKeyError(
        f"{where}: not a netcc IPsec key file (one line: {MAGIC} ID BASE64-OF-32-BYTES; "
        "`netcc ipsec keygen` writes one)"
    )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise bad from None
    parts = text.removesuffix("\n").split(" ")
    if "\n" in text.removesuffix("\n") or len(parts) != 3 or parts[0] != MAGIC:
        raise bad
    if not parts[1].isascii() or not parts[1].isdigit() or str(int(parts[1])) != parts[1]:
        raise bad
    try:
        secret = base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError):
        raise bad from None
    if len(secret) != SECRET_BYTES or not KEY_ID_MIN <= int(parts[1]) <= KEY_ID_MAX:
        raise bad
    return ClusterKey(int(parts[1]), secret)


def read_key(path: str | Path) -> ClusterKey:
    """The key in the file `path`: a regular file (no symlink followed), bounded in size."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise IPsecKeyError(f"{path}: cannot read the key file ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IPsecKeyError(f"{path}: not a regular file")
        data = os.read(fd, MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise IPsecKeyError(f"{path}: not a netcc IPsec key file (larger than one)")
    return parse_key(data, str(path))


def check_key(expected: KeyRef, key: ClusterKey) -> str:
    """The key's fingerprint, after checking it is the key the plan names: the same id, and
    the plan's fingerprint when the plan has one. IPsecKeyError (a clear refusal) otherwise.

    With no fingerprint in the plan, the caller may pin the one returned (the first key seen
    under an id) and refuse another one later."""
    got = fingerprint(key)
    if key.id != expected.id:
        raise IPsecKeyError(
            f"{expected.file}: holds key {key.id}, but the plan reads key {expected.id} from it"
        )
    if expected.fingerprint is not None and got != expected.fingerprint:
        raise IPsecKeyError(
            f"{expected.file}: key {key.id} has fingerprint {got}, but the plan expects "
            f"{expected.fingerprint} for key {key.id}: a changed key under the same id is "
            "refused (nodes would derive different keys for the same SAs); give the new key a "
            "new id (netcc ipsec keygen --key-id N) and roll it out as a rotation"
        )
    return got


# --- HKDF and the SA keys --------------------------------------------------------------------


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with SHA-256 (extract, then expand to `length` bytes): the `cryptography`
    package's implementation, through which every SA key is derived."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def _text(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">H", len(raw)) + raw


def sa_info(
    key_id: int, aead: Aead, src: str, dst: str, spi: int, src_node: str, dst_node: str
) -> bytes:
    """HKDF's `info` for one SA: every field fixed-size or length-prefixed, so two different
    SAs never give the same bytes."""
    return b"".join(
        (
            _text(SA_LABEL.decode()),
            struct.pack(">I", key_id),
            _text(aead.name),
            struct.pack(">HH", aead.key_bits, aead.icv_bits),
            IPv4Address(src).packed,
            IPv4Address(dst).packed,
            struct.pack(">I", spi),
            _text(src_node),
            _text(dst_node),
        )
    )


def sa_key(key: ClusterKey, aead: Aead, state: SAState, src_node: str, dst_node: str) -> bytes:
    """The XFRM key material of one state: (keyBits + 32) / 8 bytes, the same on both ends
    (the sender's `out` state and the receiver's `in` state of one SA name the same fields).

    `src_node` and `dst_node` are the names of the nodes at `state.src` and `state.dst`."""
    if key.id != state.key:
        raise IPsecKeyError(f"state of key {state.key} given key {key.id}")
    info = sa_info(key.id, aead, state.src, state.dst, state.spi, src_node, dst_node)
    return hkdf_sha256(key.secret, HKDF_SALT, info, aead.key_bytes)
