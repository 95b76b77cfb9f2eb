"""Canonical leaf bytes: what the log commits to, byte for byte (documented in docs/trust.md).

    leaf = 0x01 || UTF-8( canonical_json({"kind": kind, "ref": ref, "data": payload}) )

The first byte is the encoding version, so a later encoding can coexist in one log. Canonical JSON
here is deliberately narrow so that anyone can re-derive the bytes in any language:

- objects with string keys, sorted by Unicode code point; no whitespace (``,`` and ``:``);
- strings as UTF-8, escaping only what JSON requires (``"``, ``\\``, control characters as
  ``\\uXXXX`` except ``\\b \\f \\n \\r \\t``), as Python's ``json.dumps(ensure_ascii=False)``;
- integers only (no floats: quantities are integers in named units), ``true``, ``false``, ``null``;
- timestamps as strings, RFC 3339 in UTC with microseconds and ``Z``:
  ``2025-01-02T03:04:05.000000Z``.

Leaves carry account ids and amounts, never personal data; free-form fields (metadata, client
idempotency keys) enter only as SHA-256 digests of their canonical form.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

LEAF_VERSION = 1
LEDGER_TRANSFER = "ledger.transfer"
"""Leaf kind of a ledger transfer; its ref is the transfer id in decimal."""

_MAX_KIND = 64
_MAX_REF = 128


class LeafEncodingError(ValueError):
    pass


def rfc3339(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise LeafEncodingError(f"naive datetime {value!r} cannot be put in a leaf")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_PLAIN = frozenset({str, int, bool, type(None)})


class _Checked(list):  # type: ignore[type-arg]
    """A list already known to hold only plain JSON (a transfer's postings, checked as they were
    built): `_strict` passes it through instead of walking hundreds of postings a second time, and
    `canonical_json` uses the canonical text written as it was built (`text`)."""

    __slots__ = ("text",)

    def __init__(self, items: Any, text: str) -> None:
        super().__init__(items)
        self.text = text


def _strict(value: Any) -> Any:
    """The value with datetimes as RFC 3339 text; anything else that is not plain JSON raises.

    On the ledger's hot path (a batch transfer's leaf holds hundreds of postings), so it builds no
    paths as it goes: `_where` finds the offending one only when something is refused.
    """
    kind = type(value)
    # bool before int is not needed here: type() is exact, and bool stays true/false in JSON.
    if value is None or kind is str or kind is int or kind is bool or kind is _Checked:
        return value
    if kind is list or kind is tuple:
        return [item if _flat(item) else _strict(item) for item in value]
    if isinstance(value, Mapping):
        if _flat(value):
            return value  # nothing to convert
        if not all(type(key) is str for key in value):
            raise LeafEncodingError(_where(value, "$"))
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, (bool, str, int)):  # subclasses (enums and the like): their plain value
        return value
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    raise LeafEncodingError(_where(value, "$"))


def _flat(value: Any) -> bool:
    """A dict of plain values under text keys (a posting): valid as it is, and the common case."""
    return (
        type(value) is dict
        and all(type(key) is str for key in value)
        and all(type(item) in _PLAIN for item in value.values())
    )


def _where(value: Any, path: str) -> str:
    """The message naming the first part of `value` that a leaf cannot hold ("" if none)."""
    if value is None or isinstance(value, (bool, str, int, datetime)):
        return ""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: object key {key!r} is not a string"
            found = _where(item, f"{path}.{key}")
            if found:
                return found
        return ""
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _where(item, f"{path}[{i}]")
            if found:
                return found
        return ""
    return f"{path}: {type(value).__name__} is not allowed in a leaf"


def canonical_json(value: Any) -> bytes:
    """The strict canonical form above; raises LeafEncodingError on floats and other types."""
    try:
        plain = _strict(value)
    except LeafEncodingError as exc:
        raise LeafEncodingError(_where(value, "$") or str(exc)) from None
    return _text(plain).encode()


def _text(value: Any) -> str:
    # An object holding a `_Checked` list (a transfer leaf and its data) is written here, key by
    # key, so that the list's own text goes in as it is; anything else is json.dumps' canonical
    # form. Both write the same bytes (tests/trust pins it): this only skips re-encoding postings.
    if type(value) is dict and _holds_checked(value):
        return (
            "{"
            + ",".join(f"{_string(key)}:{_text(item)}" for key, item in sorted(value.items()))
            + "}"
        )
    if type(value) is _Checked:
        return value.text
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _holds_checked(value: dict[str, Any]) -> bool:
    return any(
        type(item) is _Checked or (type(item) is dict and _holds_checked(item))
        for item in value.values()
    )


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _lenient(value: Any) -> Any:
    # Free-form metadata may hold Decimals or floats written by other parts; they only feed a
    # digest, so give them a stable, documented text form instead of refusing the ledger write.
    if isinstance(value, (Decimal, float)):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _lenient(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_lenient(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def digest(value: Any) -> str:
    """Hex SHA-256 of a free-form value's canonical JSON (non-JSON scalars as their text)."""
    return hashlib.sha256(canonical_json(_lenient(value))).hexdigest()


def encode(kind: str, ref: str, payload: Mapping[str, Any]) -> bytes:
    if not kind or len(kind) > _MAX_KIND:
        raise LeafEncodingError(f"leaf kind must be 1..{_MAX_KIND} characters")
    if not ref or len(ref) > _MAX_REF:
        raise LeafEncodingError(f"leaf ref must be 1..{_MAX_REF} characters")
    body = canonical_json({"kind": kind, "ref": ref, "data": payload})
    return bytes([LEAF_VERSION]) + body


def decode(leaf: bytes) -> dict[str, Any]:
    """The JSON object inside a leaf (for display); raises LeafEncodingError if it is not ours."""
    if not leaf or leaf[0] != LEAF_VERSION:
        raise LeafEncodingError("unknown leaf encoding version")
    try:
        obj = json.loads(leaf[1:].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeafEncodingError(f"leaf is not canonical JSON: {exc}") from exc
    if not isinstance(obj, dict) or set(obj) != {"kind", "ref", "data"}:
        raise LeafEncodingError("leaf is not a {kind, ref, data} object")
    if encode(obj["kind"], obj["ref"], obj["data"]) != leaf:
        raise LeafEncodingError("leaf bytes are not in canonical form")
    return obj


def transfer_payload(
    *,
    transfer_id: int,
    kind: str,
    created_at: datetime,
    reverses_id: int | None,
    postings: list[tuple[int, str, int]],
    metadata: Mapping[str, Any],
    idempotency_key: str,
) -> dict[str, Any]:
    """The data of a ``ledger.transfer`` leaf. Postings keep the journal's order.

    Takes plain values rather than the ledger's record type: trust imports no part, and the wiring
    maps a TransferRecord onto these arguments in one place.
    """
    return {
        "id": transfer_id,
        "kind": kind,
        "created_at": rfc3339(created_at),
        "reverses_id": reverses_id,
        "postings": _postings(postings),
        "metadata_sha256": digest(metadata),
        "idempotency_key_sha256": hashlib.sha256(idempotency_key.encode()).hexdigest(),
    }


def _postings(postings: list[tuple[int, str, int]]) -> _Checked:
    """The postings as leaf objects, each value's type checked once, here, and their canonical
    JSON written at the same time: a batch transfer holds a thousand, and json.dumps took three
    times as long over them (keys in sorted order; `type(...) is int` leaves out bools)."""
    assets: dict[str, str] = {}
    parts = []
    for posting in postings:
        account_id, asset, amount = posting
        if not (type(account_id) is int and type(asset) is str and type(amount) is int):
            raise LeafEncodingError(f"posting {posting!r} is not (account id, asset, amount)")
        quoted = assets.get(asset)
        if quoted is None:
            quoted = assets[asset] = _string(asset)
        parts.append(f'{{"account_id":{account_id},"amount":{amount},"asset":{quoted}}}')
    return _Checked(
        ({"account_id": a, "asset": s, "amount": n} for a, s, n in postings),
        "[" + ",".join(parts) + "]",
    )
