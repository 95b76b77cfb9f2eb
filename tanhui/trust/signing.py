"""Signed tree heads: the exact bytes signed, Ed25519 keys, and offline signature checks.

The signature covers the 50-byte RFC 6962 §3.5 ``TreeHeadSignature`` structure (which RFC 9162
keeps the spirit of as ``TreeHeadDataV2``), big-endian, no padding:

    offset size  field
         0    1  version         = 0x00 (v1)
         1    1  signature_type  = 0x01 (tree_hash)
         2    8  timestamp       uint64, milliseconds since the Unix epoch (UTC)
        10    8  tree_size       uint64
        18   32  sha256_root_hash

signed with Ed25519 (RFC 8032, pure, no pre-hash). The key id is SHA-256 of the raw 32-byte
public key.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from tanhui.trust.merkle import HASH_SIZE, ProofError

_TREE_HEAD = struct.Struct(">BBQQ32s")


def tree_head_bytes(tree_size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
    if len(root_hash) != HASH_SIZE:
        raise ValueError("root hash must be 32 bytes")
    return _TREE_HEAD.pack(0, 1, timestamp_ms, tree_size, root_hash)


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(raw_public_key(key)).digest()


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ProofError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ProofError("public key is not Ed25519")
    return key


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign_tree_head(self, tree_size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
        return self.private_key.sign(tree_head_bytes(tree_size, root_hash, timestamp_ms))


def verify_tree_head(
    key: Ed25519PublicKey,
    tree_size: int,
    root_hash: bytes,
    timestamp_ms: int,
    signature: bytes,
) -> None:
    try:
        key.verify(signature, tree_head_bytes(tree_size, root_hash, timestamp_ms))
    except (InvalidSignature, ValueError) as exc:
        raise ProofError("tree head signature does not verify with this public key") from exc


def load_or_create_key(path: Path) -> Signer:
    """The platform's key at ``path``, generated (PKCS#8 PEM, mode 0600) on first use.

    Two processes starting at once must end with one key: the new key is written to a temporary
    file and hard-linked into place, which fails if another process got there first.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".trust-key-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"{path} does not hold an Ed25519 private key")
    return Signer(key)
