"""CSRF protection for HTML forms: a double-submit token signed with the platform secret.

The cookie `tanhui_csrf` holds `nonce.mac`; every POST form carries the same value in `csrf_token`.
A forged cross-site form cannot read the cookie, and a cookie planted by a sibling subdomain fails
the MAC, so the simple double-submit weakness does not apply.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

from tanhui.kit.errors import Forbidden
from tanhui.kit.settings import get_settings

CSRF_COOKIE = "tanhui_csrf"
CSRF_FIELD = "csrf_token"


class CsrfFailed(Forbidden):
    code = "csrf_failed"


def _mac(nonce: str) -> str:
    key = hashlib.sha256(b"tanhui-web-csrf:" + get_settings().secret()).digest()
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()[:32]


def new_token() -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_mac(nonce)}"


def valid(token: str | None) -> bool:
    if not token or token.count(".") != 1:
        return False
    nonce, mac = token.split(".")
    return hmac.compare_digest(mac, _mac(nonce))


def token_for(request: Request) -> str:
    """The request's token: the cookie's if it is genuine, else a new one (set by `render`)."""
    cached: str | None = getattr(request.state, "csrf_token", None)
    if cached:
        return cached
    cookie = request.cookies.get(CSRF_COOKIE)
    token = cookie if cookie is not None and valid(cookie) else new_token()
    request.state.csrf_token = token
    return token


def check(request: Request, submitted: str | None) -> None:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not (valid(cookie) and submitted and hmac.compare_digest(cookie or "", submitted)):
        raise CsrfFailed("The form expired or came from another site; reload the page and retry.")
