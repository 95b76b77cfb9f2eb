"""Offline verification of proof bundles and tree heads: only the file and the public key.

Nothing here touches the database or the settings, so the same code serves `tanhui trust verify` on
a citizen's laptop and the tests.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tanhui.trust import leaf as leaf_codec
from tanhui.trust import merkle, signing

BUNDLE_FORMAT = "tanhui-trust-proof/1"


@dataclass(frozen=True)
class VerifiedBundle:
    leaf_index: int
    tree_size: int
    root_hash: bytes
    timestamp_ms: int
    record: dict[str, Any]
    key_from_bundle: bool


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise merkle.ProofError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise merkle.ProofError(f"{what} is not valid base64") from exc


def _int(obj: dict[str, Any], key: str, what: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise merkle.ProofError(f"{what}.{key} must be a non-negative integer")
    return value


def _obj(obj: Any, key: str) -> dict[str, Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, dict):
        raise merkle.ProofError(f"bundle has no {key!r} object")
    return value


def verify_sth(sth: dict[str, Any], key: Ed25519PublicKey) -> tuple[int, bytes, int]:
    """Check a tree head's signature; return (tree_size, root_hash, timestamp_ms)."""
    size = _int(sth, "tree_size", "sth")
    ts = _int(sth, "timestamp", "sth")
    root = _b64(sth.get("root_hash"), "sth.root_hash")
    sig = _b64(sth.get("signature"), "sth.signature")
    signing.verify_tree_head(key, size, root, ts, sig)
    return size, root, ts


def verify_bundle(bundle: Any, public_key: Ed25519PublicKey | None = None) -> VerifiedBundle:
    """Raise ProofError unless the bundle's leaf is in the tree its signed tree head commits to.

    Without `public_key` the key inside the bundle is used; that only shows the bundle is
    self-consistent, so callers should say so (the CLI does).
    """
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise merkle.ProofError(f"not a {BUNDLE_FORMAT} bundle")
    key_from_bundle = public_key is None
    if public_key is None:
        pem = bundle.get("public_key_pem")
        if not isinstance(pem, str):
            raise merkle.ProofError("bundle has no public key; pass one")
        public_key = signing.load_public_key(pem)
    sth = _obj(bundle, "sth")
    size, root, ts = verify_sth(sth, public_key)
    inclusion = _obj(bundle, "inclusion")
    index = _int(inclusion, "leaf_index", "inclusion")
    if _int(inclusion, "tree_size", "inclusion") != size:
        raise merkle.ProofError("inclusion proof is for another tree size than the tree head")
    if bundle.get("leaf_index", index) != index:
        raise merkle.ProofError("leaf_index disagrees with the inclusion proof")
    hashes = inclusion.get("hashes")
    if not isinstance(hashes, list):
        raise merkle.ProofError("inclusion.hashes must be a list")
    proof = [_b64(h, f"inclusion.hashes[{i}]") for i, h in enumerate(hashes)]
    leaf = _b64(bundle.get("leaf"), "leaf")
    merkle.verify_inclusion(index, size, merkle.leaf_hash(leaf), proof, root)
    try:
        record = leaf_codec.decode(leaf)
    except leaf_codec.LeafEncodingError as exc:
        raise merkle.ProofError(f"leaf is in the log but not a Tanhui leaf: {exc}") from exc
    return VerifiedBundle(index, size, root, ts, record, key_from_bundle)


def verify_consistency_file(data: Any, key: Ed25519PublicKey) -> tuple[int, int]:
    """Check {"first": STH, "second": STH, "hashes": [...]} (both heads signed by `key`)."""
    if not isinstance(data, dict):
        raise merkle.ProofError("consistency file must be a JSON object")
    s1, r1, _ = verify_sth(_obj(data, "first"), key)
    s2, r2, _ = verify_sth(_obj(data, "second"), key)
    hashes = data.get("hashes")
    if not isinstance(hashes, list):
        raise merkle.ProofError("hashes must be a list")
    proof = [_b64(h, f"hashes[{i}]") for i, h in enumerate(hashes)]
    merkle.verify_consistency(s1, s2, r1, r2, proof)
    return s1, s2
