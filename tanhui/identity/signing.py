"""Partner request signing: the contract partners code against (also used by tests, demo and benchmarks).

A request carries four headers:

    X-Tanhui-Key        the key id
    X-Tanhui-Timestamp  Unix seconds; more than 300 s away from the server's clock is refused
    X-Tanhui-Nonce      16-64 characters, never reused with the same key
    X-Tanhui-Signature  lowercase hex HMAC-SHA256, keyed with the secret's UTF-8 bytes, over

        METHOD "\\n" PATH "\\n" TIMESTAMP "\\n" NONCE "\\n" hex(SHA-256(body))

PATH is the request path without the query string, exactly as sent (percent-encoding included).
Imports nothing from the database: a partner SDK can copy this file.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import datetime

KEY_HEADER = "X-Tanhui-Key"
TIMESTAMP_HEADER = "X-Tanhui-Timestamp"
NONCE_HEADER = "X-Tanhui-Nonce"
SIGNATURE_HEADER = "X-Tanhui-Signature"
HEADERS = (KEY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)

MAX_SKEW_SECONDS = 300
NONCE_MIN, NONCE_MAX = 16, 64


def _bytes(body: bytes | str | None) -> bytes:
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else body


def body_sha256(body: bytes | str | None) -> str:
    return hashlib.sha256(_bytes(body)).hexdigest()


def string_to_sign(
    method: str, path: str, timestamp: int | str, nonce: str, body: bytes | str | None
) -> bytes:
    path = path.split("?", 1)[0]
    return "\n".join([method.upper(), path, str(timestamp), nonce, body_sha256(body)]).encode()


def sign(
    secret: str,
    method: str,
    path: str,
    timestamp: int | str,
    nonce: str,
    body: bytes | str | None,
) -> str:
    """The X-Tanhui-Signature value for one request."""
    return hmac.new(
        secret.encode(), string_to_sign(method, path, timestamp, nonce, body), hashlib.sha256
    ).hexdigest()


def signed_headers(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes | str | None = b"",
    *,
    now: datetime | float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """All four headers for a request (a fresh random nonce unless given)."""
    if now is None:
        timestamp = int(time.time())
    elif isinstance(now, datetime):
        timestamp = int(now.timestamp())
    else:
        timestamp = int(now)
    nonce = nonce or secrets.token_hex(16)
    return {
        KEY_HEADER: key_id,
        TIMESTAMP_HEADER: str(timestamp),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign(secret, method, path, timestamp, nonce, body),
    }
