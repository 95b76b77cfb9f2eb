"""Console page for staff accounts (工作人员), operator_admin only: the list with roles and status,
creating a user, changing their roles, deactivating and reactivating one (which ends their sessions
at once), resetting a password. The rules (last operator_admin, not oneself) are the identity
service's; the page shows its refusals beside the form that caused them.

Also every staff user's own page for changing their password (/console/password): their other
sessions end, the web session making the change stays."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.auth import SESSION_COOKIE
from tanhui.identity.principal import ROLES, Principal
from tanhui.kit.errors import InvalidInput, TanhuiError
from tanhui.kit.http import get_session
from tanhui.web import render
from tanhui.web.auth import staff_page
from tanhui.web.views import common
from tanhui.web.views.common import N_, error_map, error_page, form_data, require_role, to_int

router = APIRouter(prefix="/console/staff", include_in_schema=False)
own_router = APIRouter(prefix="/console/password", include_in_schema=False)

ROLE_ORDER = (
    "operator_admin",
    "reviewer",
    "merchant",
    "verifier",
    "project_owner",
    "buyer",
    "enterprise_admin",
)
assert set(ROLE_ORDER) == ROLES, "every role needs a place (and a label) on the page"

FLASH: dict[str, tuple[str, str]] = {
    # this page's own ?done= keys, beside the shared ones in views.common
    "deactivated": ("ok", N_("The account is deactivated; its sessions have ended.")),
    "activated": ("ok", N_("The account can log in again.")),
    "password_reset": ("ok", N_("The password is set; the user's sessions have ended.")),
    "roles_saved": ("ok", N_("The roles are saved.")),
    "password_changed": (
        "ok",
        N_("Your password is changed; your sessions elsewhere have ended."),
    ),
}

CREATE_FIELDS = ("username", "display_name", "password", "organisation_id", "idempotency_key")


def flash(request: Request) -> dict[str, str] | None:
    return common.flash(request, FLASH)


def _page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    row_errors: dict[int, dict[str, str]] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render.render(
        request,
        "console/staff.html",
        {
            "staff": identity_service.list_staff(session, principal),
            "organisations": identity_service.list_organisations(session),
            "roles": ROLE_ORDER,
            "me": principal.id,
            "errors": errors or {},
            "form": form or {},
            # Kept while the form is corrected: a key is spent only by a creation that succeeds.
            "create_key": (form or {}).get("idempotency_key") or render.form_key(),
            "row_errors": row_errors or {},
            "flash": flash(request),
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("", response_class=HTMLResponse)
def staff_list(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    try:
        require_role(principal, "operator_admin")
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console")
    return _page(request, session, principal)


@router.post("", response_class=HTMLResponse)
def staff_create(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    form = {k: data.get(k, "") for k in CREATE_FIELDS}
    chosen = [r for r in ROLE_ORDER if data.get(f"role_{r}") == "1"]
    try:
        require_role(principal, "operator_admin")
        org_text = form["organisation_id"].strip()
        org = to_int(org_text) if org_text else None
        if org_text and (org is None or org < 1):
            raise InvalidInput(
                "no such organisation", code="organisation_not_found", field="organisation_id"
            )
        if not chosen:
            raise InvalidInput(N_("give at least one role"), code="no_roles", field="roles")
        identity_service.create_staff(
            session,
            principal,
            username=form["username"],
            password=form["password"],
            roles=chosen,
            organisation_id=org,
            display_name=form["display_name"].strip() or None,
            # The form's own key: submitted twice (a double click, a resent page), one user.
            idempotency_key=data.get("idempotency_key", "").strip()[:200] or None,
        )
    except TanhuiError as exc:
        session.rollback()
        if exc.status_code == 403:
            return error_page(request, exc, principal, back="/console")
        # The password is never sent back into the page.
        form["password"] = ""
        form.update({f"role_{r}": "1" for r in chosen})
        return _page(
            request,
            session,
            principal,
            errors=error_map(request, exc),
            form=form,
            status_code=exc.status_code,
        )
    return render.redirect("/console/staff?done=created")


def _row_action(
    request: Request,
    session: Session,
    principal: Principal,
    staff_id: str,
    data: dict[str, str],
    act: Callable[[dict[str, str], int], str],
) -> Response:
    """A form on one staff user's row: `act(form, staff_id)` does it and names the flash message;
    a refusal is shown in that row."""
    sid = to_int(staff_id)
    try:
        require_role(principal, "operator_admin")
        if sid is None:
            raise identity_service.StaffNotFound("no such staff user", field="staff_id")
        done = act(data, sid)
    except TanhuiError as exc:
        session.rollback()
        if sid is None or exc.status_code in (403, 404):
            return error_page(request, exc, principal, back="/console/staff")
        return _page(
            request,
            session,
            principal,
            row_errors={sid: error_map(request, exc)},
            status_code=exc.status_code,
        )
    return render.redirect(f"/console/staff?done={done}#staff-{sid}")


@router.post("/{staff_id}/active", response_class=HTMLResponse)
def staff_active(
    request: Request,
    staff_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    """Deactivate (active=0) or reactivate (active=1) a staff user."""

    def act(data: dict[str, str], sid: int) -> str:
        wanted = data.get("active")
        if wanted not in ("0", "1"):
            raise InvalidInput(N_("choose deactivate or reactivate"), field="active")
        identity_service.update_staff(session, principal, sid, active=wanted == "1")
        return "activated" if wanted == "1" else "deactivated"

    return _row_action(request, session, principal, staff_id, data, act)


@router.post("/{staff_id}/password", response_class=HTMLResponse)
def staff_password(
    request: Request,
    staff_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    """Set a new password for a staff user; their sessions end."""

    def act(data: dict[str, str], sid: int) -> str:
        password = data.get("password", "")
        identity_service.reset_staff_password(session, principal, sid, password=password)
        return "password_reset"

    return _row_action(request, session, principal, staff_id, data, act)


@router.post("/{staff_id}/roles", response_class=HTMLResponse)
def staff_roles(
    request: Request,
    staff_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    """Replace a staff user's roles with the ticked ones (at least one; the last active
    operator_admin keeps that role)."""

    def act(data: dict[str, str], sid: int) -> str:
        chosen = [r for r in ROLE_ORDER if data.get(f"role_{r}") == "1"]
        identity_service.update_staff(session, principal, sid, roles=chosen)
        return "roles_saved"

    return _row_action(request, session, principal, staff_id, data, act)


# --- one's own password -------------------------------------------------------------------------


def _password_page(
    request: Request,
    principal: Principal,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render.render(
        request,
        "console/password.html",
        {"errors": errors or {}, "flash": flash(request)},
        principal=principal,
        status_code=status_code,
    )


@own_router.get("", response_class=HTMLResponse)
def own_password_page(request: Request, principal: Principal = Depends(staff_page)) -> HTMLResponse:
    return _password_page(request, principal)


@own_router.post("", response_class=HTMLResponse)
def own_password_change(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    """Change one's own password, proving the current one; this web session stays logged in and
    every other session of the user ends."""
    try:
        try:
            identity_service.change_own_password(
                session,
                principal,
                current_password=data.get("current_password", ""),
                new_password=data.get("new_password", ""),
                keep_token=request.cookies.get(SESSION_COOKIE),
            )
        except identity_service.WrongPassword:
            # Keep the counted failure: the lockout is what stops guessing the current password.
            session.commit()
            raise
    except TanhuiError as exc:
        session.rollback()
        # Passwords are never sent back into the page.
        return _password_page(
            request, principal, errors=error_map(request, exc), status_code=exc.status_code
        )
    return render.redirect("/console/password?done=password_changed")
