"""Helpers shared by the page modules: form parsing, CSRF, error placement, flash messages.

Page handlers are plain `def`s, which FastAPI runs in its thread pool: they query the database and
hash passwords, and on the event loop that work would stall every other request of the process.
What must be awaited (reading the posted form) is done before them, by the dependencies here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from tanhui.identity.principal import Principal
from tanhui.kit.errors import Forbidden, TanhuiError
from tanhui.web import i18n, render, security
from tanhui.web.i18n import N_

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


def flash(
    request: Request, page: Mapping[str, tuple[str, str]] | None = None
) -> dict[str, str] | None:
    """The message named by ?done=, from the page's own `page` messages or the shared FLASH."""
    key = request.query_params.get("done")
    found = (page or {}).get(key or "") or FLASH.get(key or "")
    if found is None:
        return None
    kind, msgid = found
    return {"kind": kind, "text": i18n.translator(render.lang_of(request))(msgid)}


def require_role(principal: Principal, *roles: str) -> None:
    """Forbidden unless the principal holds one of `roles`."""
    if not principal.has_role(*roles):
        raise Forbidden(
            f"requires one of the roles: {', '.join(roles)}", code="missing_role", field=None
        )


async def form_data(request: Request) -> dict[str, str]:
    """Dependency: the posted form as plain strings, after the CSRF check (files are left out)."""
    async with request.form() as form:  # closes any uploaded file's temporary file
        values = {k: v for k, v in form.items() if isinstance(v, str)}
    security.check(request, values.get(security.CSRF_FIELD))
    return values


@dataclass(frozen=True)
class Upload:
    filename: str  # as the browser sent it, NUL characters removed; "" when no file was chosen
    content_type: str
    data: bytes  # at most the dependency's `read_at_most` bytes


@dataclass(frozen=True)
class Posted:
    values: dict[str, str]
    files: dict[str, Upload]


def form_with_files(read_at_most: int) -> Callable[[Request], Awaitable[Posted]]:
    """Dependency: the posted form with its files read, after the CSRF check.

    `read_at_most`: one byte more than the page accepts, so that the handler can tell a file that
    is too large from one that just fits without reading all of a huge upload.
    """

    async def posted(request: Request) -> Posted:
        async with request.form() as form:  # closes the uploads' temporary files
            values = {k: v for k, v in form.items() if isinstance(v, str)}
            security.check(request, values.get(security.CSRF_FIELD))
            files = {
                k: Upload(
                    (v.filename or "").replace("\x00", ""),
                    v.content_type or "",
                    await v.read(read_at_most),
                )
                for k, v in form.items()
                if not isinstance(v, str)
            }
        return Posted(values, files)

    return posted


ERROR_TEXT: dict[str, str] = {
    # Services speak English with stable codes; the pages say the common ones in the reader's
    # language. An unknown code shows the service's own message.
    "invalid_phone": N_("Enter an 11-digit mainland China mobile number."),
    "citizen_not_found": N_("No citizen uses this phone number."),
    "invalid_otp": N_("The code is wrong or has expired; request a new one."),
    "otp_rate_limited": N_("Too many codes were requested for this number; try again later."),
    "otp_delivery_failed": N_("The code could not be sent just now; try again in a moment."),
    "invalid_credentials": N_("The username or password is wrong."),
    "invalid_rule": N_("This value is not allowed for this parameter."),
    "login_locked": N_("Too many wrong passwords: this account is locked for 15 minutes."),
    "citizen_erased": N_("This account was deleted."),
    "insufficient_points": N_("You do not have enough points for this."),
    "insufficient_funds": N_("You do not have enough points for this."),
    "out_of_stock": N_("Sold out."),
    "code_not_valid": N_("This code is not valid for your rewards."),
    "code_already_used": N_("This code was already written off; it cannot be used twice."),
    "limit_reached": N_("You reached the limit for this reward."),
    "reward_not_available": N_("This reward is not on sale now."),
    "not_eligible": N_("This reward is not available to you."),
    "reward_not_found": N_("This reward does not exist."),
    "order_not_found": N_("This order does not exist."),
    "order_state": N_("This order can no longer be changed."),
    "record_not_found": N_("This record does not exist."),
    "binding_not_found": N_("This link does not exist."),
    "redirect_uri_not_registered": N_("The app sent you from an address it did not register."),
    "scenario_not_approved": N_("The app is not approved for these activities."),
    "partner_user_bound_elsewhere": N_(
        "This app account is linked to another person, who must revoke it first."
    ),
    "partner_not_found": N_("This app is not a partner of the platform."),
    "partner_suspended": N_("This app is suspended."),
    "missing_role": N_("Your account may not do this."),
    "csrf_failed": N_("The form expired or came from another site; reload the page and retry."),
    "not_in_review": N_("This record was already decided."),
    "methodology_version_exists": N_(
        "This version already exists; give the new one another version."
    ),
    "scenario_mismatch": N_("This methodology is for another scenario."),
    "unknown_scenario": N_("Unknown scenario."),
    "invalid_scenarios": N_("Unknown or empty scenarios."),
    "invalid_redirect_uri": N_("Give https addresses (http only for localhost), without a # part."),
    "invalid_date": N_("Choose a day from today on."),
    "too_long": N_("This is too long; shorten it."),
    "idempotency_conflict": N_("This form was already sent with other values; reload the page."),
    "staff_not_found": N_("This staff user does not exist."),
    "last_operator_admin": N_(
        "This is the last active operator admin: make someone else operator admin first."
    ),
    "self_deactivation": N_("You cannot deactivate your own account."),
    "weak_password": N_("The password needs at least 8 characters."),
    "password_too_long": N_("The password may have at most 256 characters."),
    "wrong_password": N_("The current password is wrong."),
    "invalid_username": N_("Use 2-64 letters, digits, '.', '_' or '-'."),
    "username_taken": N_("This username is taken."),
    "invalid_display_name": N_("Give a name of 1 to 100 characters, on one line."),
    "unknown_role": N_("Unknown role."),
    "no_roles": N_("Choose at least one role."),
    "organisation_not_found": N_("This organisation does not exist."),
}


def error_map(request: Request, exc: TanhuiError) -> dict[str, str]:
    """{field: message}; "" is the form-level slot. Known codes are said in the page's language."""
    _ = i18n.translator(render.lang_of(request))
    text = ERROR_TEXT.get(exc.code)
    return {exc.field or "": _(text) if text else _(exc.message)}


def error_page(
    request: Request, exc: TanhuiError, principal: Any = None, *, back: str = "/"
) -> HTMLResponse:
    return render.render(
        request,
        "error.html",
        {"message": next(iter(error_map(request, exc).values())), "code": exc.code, "back": back},
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
