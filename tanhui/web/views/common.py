"""Helpers shared by the page modules: form parsing, CSRF, error placement, flash messages."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from tanhui.kit.errors import TanhuiError
from tanhui.web import i18n, render, security


def N_(message: str) -> str:
    """Marks a msgid for extraction; translated where it is shown."""
    return message


FLASH: dict[str, tuple[str, str]] = {
    # key -> (kind, English msgid); ?done=<key> after a POST-redirect-GET
    "redeemed": ("ok", N_("Redeemed. Your code is in Orders.")),
    "revoked": ("ok", N_("The app can no longer send records for you.")),
    "bound": ("ok", N_("The app is linked.")),
    "approved": ("ok", N_("Approved.")),
    "rejected": ("ok", N_("Rejected.")),
    "published": ("ok", N_("The new version is published.")),
    "saved": ("ok", N_("Saved.")),
    "deleted": ("ok", N_("Your account was deleted.")),
    "logged_out": ("ok", N_("You are logged out.")),
    "created": ("ok", N_("Created.")),
    "cancelled": ("ok", N_("Cancelled.")),
}


def flash(request: Request) -> dict[str, str] | None:
    key = request.query_params.get("done")
    if key not in FLASH:
        return None
    kind, msgid = FLASH[key]
    return {"kind": kind, "text": i18n.translator(render.lang_of(request))(msgid)}


async def form_data(request: Request) -> dict[str, str]:
    """The posted form as plain strings, after the CSRF check (files are read separately)."""
    async with request.form() as form:  # closes any uploaded file's temporary file
        values = {k: v for k, v in form.items() if isinstance(v, str)}
    security.check(request, values.get(security.CSRF_FIELD))
    return values


def error_map(request: Request, exc: TanhuiError) -> dict[str, str]:
    """{field: message}; "" is the form-level slot. Message translated when the catalogue knows it."""
    _ = i18n.translator(render.lang_of(request))
    return {exc.field or "": _(exc.message)}


def error_page(
    request: Request, exc: TanhuiError, principal: Any = None, *, back: str = "/"
) -> HTMLResponse:
    return render.render(
        request,
        "error.html",
        {"message": error_map(request, exc)[exc.field or ""], "code": exc.code, "back": back},
        status_code=exc.status_code,
        principal=principal,
    )


def to_int(value: str | None) -> int | None:
    """A form or path integer, or None if it is not one a database column can hold (64-bit)."""
    try:
        number = int(value) if value is not None and value.strip() else None
    except ValueError:
        return None
    if number is None or not -(2**63) <= number < 2**63:
        return None
    return number
