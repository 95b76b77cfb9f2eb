"""Canonical JSON and its SHA-256: the request hash behind every idempotency key."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from tanhui.kit.errors import InvalidInput


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not canonicalisable: {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_default,
    ).encode()


def check_idempotency_key(key: str | None) -> None:
    """An optional Idempotency-Key holds 1-200 characters (the columns that store one)."""
    if key is not None and not 1 <= len(key) <= 200:
        raise InvalidInput("an idempotency key has 1-200 characters", field="idempotency_key")


def fingerprint(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()
