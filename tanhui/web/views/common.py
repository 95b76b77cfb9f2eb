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
from tanhui.kit.errors import Forbidden, InvalidInput, TanhuiError
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
    "bad_request": N_("The request is not valid."),
    "invalid_input": N_("Something in the form is not valid."),
    "not_found": N_("This does not exist."),
    "conflict": N_("This cannot be done in the current state."),
    "forbidden": N_("You may not do this."),
    "unauthorized": N_("Log in first."),
    "not_authenticated": N_("Log in first."),
    "account_not_found": N_("This account does not exist."),
    "already_issued": N_("Some of these records were already issued or are not credited."),
    "already_reversed": N_("This was already reversed."),
    "application_not_found": N_("This application does not exist."),
    "application_not_pending": N_("This application was already decided."),
    "award_not_found": N_("No points were awarded for this."),
    "bad_signature": N_("The request signature is wrong."),
    "bad_tree_size": N_("This log size is not valid."),
    "batch_not_found": N_("This credit batch does not exist."),
    "binding_revoked": N_("This link was revoked; authorise the app again."),
    "calculation_overflow": N_(
        "The calculation gives a number too large to store; check the inputs."
    ),
    "cannot_reverse_reversal": N_("A reversal cannot itself be reversed."),
    "citizen_only": N_("Only citizens can do this."),
    "clock_skew": N_("The request time is too far from the server's clock."),
    "empty_file": N_("The file is empty."),
    "factor_not_in_force": N_("An emission factor is not in force on this date."),
    "file_too_large": N_("The file is too large."),
    "hold_not_found": N_("This hold does not exist."),
    "hold_not_pending": N_("This hold was already settled."),
    "import_rejected": N_("The import was refused; nothing was imported."),
    "incomplete_application": N_(
        "Give the organisation's name, licence number and how the data is collected."
    ),
    "insufficient_credits": N_("There are not enough credits in this account."),
    "invalid_batch": N_("The batch is not valid."),
    "invalid_csv": N_("The file is not a valid CSV file."),
    "invalid_grace": N_("The grace period must not be negative."),
    "invalid_grant": N_("This authorisation is not valid or has expired."),
    "invalid_json": N_("The content is not valid JSON."),
    "invalid_name": N_("Give a name."),
    "invalid_partner_user_id": N_("The app's user id is not valid."),
    "invalid_principal": N_("This kind of user cannot have a token."),
    "invalid_quantity": N_("A quantity is not valid."),
    "invalid_record": N_("A record is not valid."),
    "invalid_status": N_("Choose active or suspended."),
    "invalid_token": N_("The login has expired; log in again."),
    "invalid_transition": N_("This step is not possible in the current state."),
    "key_revoked": N_("This key was revoked."),
    "leaf_not_found": N_("This entry is not in the log."),
    "malformed_signature_headers": N_("The signature headers are malformed."),
    "merchant_only": N_("Only merchants can do this."),
    "methodology_invalid": N_("The methodology file is not valid."),
    "methodology_not_found": N_("This methodology does not exist."),
    "methodology_not_in_force": N_("No methodology version is in force on this date."),
    "missing_signature_headers": N_("The request is not signed."),
    "nonce_reused": N_("This request was already sent (the nonce was used)."),
    "not_a_partner_organisation": N_("This organisation is not a partner."),
    "not_account_holder": N_("You may not move credits of this account."),
    "not_allowed": N_("You may not do this."),
    "not_yet_signed": N_("The log has not been signed yet."),
    "nothing_to_issue": N_("There is nothing to issue."),
    "operator_only": N_("Only operators can do this."),
    "outside_crediting_period": N_("This period is outside the project's crediting period."),
    "partner_approval_lapsed": N_("The app's approval has lapsed."),
    "partner_exists": N_("This organisation already is a partner."),
    "period_overlap": N_("This period overlaps one already reported."),
    "points_spent": N_("These points were already spent."),
    "project_not_found": N_("This project does not exist."),
    "registry_account_not_found": N_("This registry account does not exist."),
    "report_not_found": N_("This report does not exist."),
    "request_too_large": N_("The request is too large."),
    "retirement_not_found": N_("No retirement has this number."),
    "scenario_not_applied": N_("The application did not ask for these activities."),
    "staff_only": N_("Only staff can do this."),
    "transfer_not_found": N_("This transfer does not exist."),
    "trust_error": N_("The public log could not do this."),
    "unbalanced_transfer": N_("The postings do not balance."),
    "unknown_key": N_("This key is not known."),
    "unknown_methodology": N_("This methodology does not exist."),
    "unknown_organisation_kind": N_("Unknown kind of organisation."),
    "unknown_reason": N_("Unknown review reason."),
    "unknown_status": N_("Unknown status."),
    "unsupported_content_encoding": N_("Send the request uncompressed."),
    "unsupported_file_type": N_("This type of file is not accepted."),
    "not_empty": N_("The database already has data."),
    "timezone_changed": N_("The platform time zone differs from the one the data was kept in."),
}

# Codes whose service message carries what to fix (a line of a file, a limit, a state): the page
# says the sentence above, then that message.
WITH_DETAIL = frozenset(
    {
        "bad_request",
        "invalid_input",
        "not_found",
        "conflict",
        "forbidden",
        "already_issued",
        "bad_tree_size",
        "calculation_overflow",
        "factor_not_in_force",
        "file_too_large",
        "request_too_large",
        "import_rejected",
        "insufficient_credits",
        "invalid_batch",
        "invalid_csv",
        "invalid_partner_user_id",
        "invalid_quantity",
        "invalid_record",
        "invalid_transition",
        "leaf_not_found",
        "malformed_signature_headers",
        "methodology_invalid",
        "methodology_not_in_force",
        "missing_signature_headers",
        "not_allowed",
        "nothing_to_issue",
        "outside_crediting_period",
        "period_overlap",
        "points_spent",
        "scenario_not_applied",
        "trust_error",
        "unbalanced_transfer",
        "unknown_methodology",
        "unsupported_file_type",
    }
)
# A code without words of its own is said as the kind of error its status is.
_BY_STATUS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid_input",
}
_GENERIC = frozenset({"bad_request", *_BY_STATUS.values()})


_PAGE_MESSAGE = "page_message"  # InvalidInput.extra key: (msgid, its %-parameters), see `too_long`


def too_long(field: str, limit: int) -> InvalidInput:
    """A form field past its length limit, said in the page's language by `error_map`.

    A msgid with a parameter: the plain message (English, for logs) cannot be looked up in the
    catalogue once the number is in it."""
    msgid = N_("at most %(limit)d characters")
    params = {"limit": limit}
    return InvalidInput(
        msgid % params, code="too_long", field=field, extra={_PAGE_MESSAGE: (msgid, params)}
    )


def error_map(request: Request, exc: TanhuiError) -> dict[str, str]:
    """{field: message}; "" is the form-level slot, said in the page's language: the code's own
    sentence; for a generic code, a message written for the pages (a msgid, with its parameters
    when `too_long` made it) if it is one, else the generic sentence. The service's message
    follows where it tells what to fix."""
    _ = i18n.translator(render.lang_of(request))
    if _PAGE_MESSAGE in exc.extra:
        msgid, params = exc.extra[_PAGE_MESSAGE]
        return {exc.field or "": _(msgid) % params}
    code = exc.code
    if code not in ERROR_TEXT or code in _GENERIC:
        if exc.message and i18n.in_catalogue(exc.message):
            return {exc.field or "": _(exc.message)}
        code = code if code in _GENERIC else _BY_STATUS.get(exc.status_code, "bad_request")
    text = _(ERROR_TEXT[code])
    if (code in WITH_DETAIL or code != exc.code) and exc.message:
        text = _("%(text)s (%(detail)s)") % {"text": text, "detail": exc.message}
    return {exc.field or "": text}


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
