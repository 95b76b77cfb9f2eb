"""Identity routes: logins, staff accounts, the caller's own data (PIPL export and erasure), partners
and consent."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from sqlalchemy.orm import Session

from tanhui.identity import schemas
from tanhui.identity import service as identity_service
from tanhui.identity.auth import (
    bearer_token,
    current_citizen,
    current_principal,
    current_staff,
    optional_principal,
    partner_request,
    require_role,
)
from tanhui.identity.models import PartnerApplication
from tanhui.identity.principal import PartnerPrincipal, Principal
from tanhui.kit.http import get_session

router = APIRouter(prefix="/v1", tags=["identity"])

# Optional on creations: the same key and request again answer with what the first one created.
IDEMPOTENCY_KEY = Header(None, alias="Idempotency-Key", min_length=1, max_length=200)


def _principal_out(p: Principal) -> schemas.PrincipalOut:
    return schemas.PrincipalOut(
        kind=p.kind,
        id=p.id,
        roles=sorted(p.roles),
        organisation_id=p.organisation_id,
        display_name=p.display_name,
    )


def _login_out(p: Principal, token: str) -> schemas.LoginOut:
    ttl = (
        identity_service.STAFF_TOKEN_TTL
        if p.kind == "staff"
        else identity_service.CITIZEN_TOKEN_TTL
    )
    return schemas.LoginOut(
        token=token, expires_in=int(ttl.total_seconds()), principal=_principal_out(p)
    )


@router.post("/auth/staff/login", response_model=schemas.LoginOut, summary="Staff login")
def staff_login(
    body: schemas.StaffLogin, session: Session = Depends(get_session)
) -> schemas.LoginOut:
    try:
        principal, token = identity_service.login_staff(
            session, username=body.username, password=body.password
        )
    except identity_service.InvalidCredentials:
        # Keep the counted failure: the lockout is what stops guessing passwords.
        session.commit()
        raise
    return _login_out(principal, token)


@router.get(
    "/organisations",
    response_model=list[schemas.OrganisationOut],
    summary="Organisations, optionally of one kind (staff)",
)
def list_organisations(
    kind: Literal[
        "platform", "partner", "merchant", "project_owner", "verifier", "buyer", "enterprise"
    ]
    | None = None,
    session: Session = Depends(get_session),
    _: Principal = Depends(current_staff),
) -> list[schemas.OrganisationOut]:
    return [
        schemas.OrganisationOut(id=o.id, name=o.name, kind=o.kind)
        for o in identity_service.list_organisations(session, kind=kind)
    ]


@router.post("/auth/otp", response_model=schemas.OtpSent, summary="Send a one-time login code")
def request_otp(
    body: schemas.OtpRequest, session: Session = Depends(get_session)
) -> schemas.OtpSent:
    pending = identity_service.request_otp(session, phone=body.phone)
    session.commit()
    pending.send()
    return schemas.OtpSent(sent=True, expires_in=300)


@router.post("/auth/citizen/login", response_model=schemas.LoginOut, summary="Citizen login")
def citizen_login(
    body: schemas.CitizenLogin, session: Session = Depends(get_session)
) -> schemas.LoginOut:
    try:
        principal, token = identity_service.login_citizen(session, phone=body.phone, code=body.code)
    except identity_service.InvalidOtp:
        # Keep the counted attempt: the attempt limit is what stops guessing the 6 digits.
        session.commit()
        raise
    return _login_out(principal, token)


@router.post("/auth/logout", status_code=204, summary="Revoke the presented token")
def logout(
    request: Request,
    _: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> None:
    token = bearer_token(request)
    if token:
        identity_service.revoke_token(session, token)


@router.get("/me", response_model=schemas.MeOut, summary="The caller")
def me(
    principal: Principal = Depends(current_principal), session: Session = Depends(get_session)
) -> schemas.MeOut:
    citizen = None
    if principal.kind == "citizen":
        c = identity_service.get_citizen(session, principal.id)
        citizen = schemas.CitizenProfile(
            id=c.id, nickname=c.nickname, district=c.district, created_at=c.created_at
        )
    return schemas.MeOut(principal=_principal_out(principal), citizen=citizen)


@router.patch("/me", response_model=schemas.CitizenProfile, summary="Change nickname or district")
def update_me(
    body: schemas.ProfileUpdate,
    principal: Principal = Depends(current_citizen),
    session: Session = Depends(get_session),
) -> schemas.CitizenProfile:
    c = identity_service.update_citizen_profile(
        session, principal.id, nickname=body.nickname, district=body.district
    )
    return schemas.CitizenProfile(
        id=c.id, nickname=c.nickname, district=c.district, created_at=c.created_at
    )


# --- staff accounts (operator_admin) ------------------------------------------------------------


def _staff_out(v: identity_service.StaffView) -> schemas.StaffOut:
    return schemas.StaffOut(
        id=v.id,
        username=v.username,
        display_name=v.display_name,
        roles=v.roles,
        organisation_id=v.organisation_id,
        organisation_name=v.organisation_name,
        active=v.active,
        created_at=v.created_at,
        last_login_at=v.last_login_at,
        locked_until=v.locked_until,
    )


@router.get("/staff", response_model=list[schemas.StaffOut], summary="Staff users (operator_admin)")
def list_staff(
    principal: Principal = Depends(require_role("operator_admin")),
    session: Session = Depends(get_session),
) -> list[schemas.StaffOut]:
    return [_staff_out(v) for v in identity_service.list_staff(session, principal)]


@router.post(
    "/staff",
    response_model=schemas.StaffOut,
    status_code=201,
    summary="Create a staff user (operator_admin); with an Idempotency-Key a retry returns the same user",
)
def create_staff(
    body: schemas.StaffCreate,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
    principal: Principal = Depends(require_role("operator_admin")),
    session: Session = Depends(get_session),
) -> schemas.StaffOut:
    staff = identity_service.create_staff(
        session,
        principal,
        username=body.username,
        password=body.password,
        roles=body.roles,
        organisation_id=body.organisation_id,
        display_name=body.display_name,
        idempotency_key=idempotency_key,
    )
    return _staff_out(identity_service.staff_view(session, staff.id))


@router.patch(
    "/staff/{staff_id}",
    response_model=schemas.StaffOut,
    summary="Rename, change roles, deactivate or reactivate a staff user (operator_admin)",
)
def update_staff(
    staff_id: int,
    body: schemas.StaffUpdate,
    principal: Principal = Depends(require_role("operator_admin")),
    session: Session = Depends(get_session),
) -> schemas.StaffOut:
    view = identity_service.update_staff(
        session,
        principal,
        staff_id,
        display_name=body.display_name,
        roles=body.roles,
        active=body.active,
    )
    return _staff_out(view)


@router.post(
    "/staff/{staff_id}/password",
    status_code=204,
    summary="Set a staff user's password; their sessions end (operator_admin)",
)
def reset_staff_password(
    staff_id: int,
    body: schemas.PasswordReset,
    principal: Principal = Depends(require_role("operator_admin")),
    session: Session = Depends(get_session),
) -> None:
    identity_service.reset_staff_password(session, principal, staff_id, password=body.password)


@router.post(
    "/me/password",
    status_code=204,
    summary="Change my own password (staff); my other sessions end",
)
def change_my_password(
    request: Request,
    body: schemas.PasswordChange,
    principal: Principal = Depends(current_staff),
    session: Session = Depends(get_session),
) -> None:
    try:
        identity_service.change_own_password(
            session,
            principal,
            current_password=body.current_password,
            new_password=body.new_password,
            keep_token=bearer_token(request),
        )
    except identity_service.WrongPassword:
        # Keep the counted failure: the lockout is what stops guessing the current password.
        session.commit()
        raise


# --- the citizen's own data ---------------------------------------------------------------------


def _binding_out(b: identity_service.BindingView) -> schemas.BindingOut:
    return schemas.BindingOut(
        id=b.id,
        partner_id=b.partner_id,
        partner_name=b.partner_name,
        partner_user_id=b.partner_user_id,
        scenarios=b.scenarios,
        status=b.status,
        bound_at=b.bound_at,
        revoked_at=b.revoked_at,
    )


@router.get("/me/bindings", response_model=list[schemas.BindingOut], summary="My partner bindings")
def my_bindings(
    principal: Principal = Depends(current_citizen), session: Session = Depends(get_session)
) -> list[schemas.BindingOut]:
    return [_binding_out(b) for b in identity_service.citizen_bindings(session, principal.id)]


@router.delete(
    "/me/bindings/{binding_id}", response_model=schemas.BindingOut, summary="Revoke a binding"
)
def revoke_my_binding(
    binding_id: int,
    principal: Principal = Depends(current_citizen),
    session: Session = Depends(get_session),
) -> schemas.BindingOut:
    return _binding_out(identity_service.revoke_binding(session, principal.id, binding_id))


@router.patch(
    "/me/bindings/{binding_id}",
    response_model=schemas.BindingOut,
    summary="Change the consented scenarios of a binding",
)
def update_my_binding(
    binding_id: int,
    body: schemas.BindingScenariosUpdate,
    principal: Principal = Depends(current_citizen),
    session: Session = Depends(get_session),
) -> schemas.BindingOut:
    view = identity_service.update_binding_scenarios(
        session, principal.id, binding_id, scenarios=body.scenarios
    )
    return _binding_out(view)


@router.get(
    "/me/access-log",
    response_model=list[schemas.AccessLogEntry],
    summary="Who read my personal data, when, what and why",
)
def my_access_log(
    limit: int = Query(100, ge=1, le=1000, description="Entries per page, newest first."),
    before_id: int | None = Query(None, ge=1, description="Entries older than this id."),
    principal: Principal = Depends(current_citizen),
    session: Session = Depends(get_session),
) -> list[schemas.AccessLogEntry]:
    entries = identity_service.access_log(session, principal.id, limit=limit, before_id=before_id)
    return [
        schemas.AccessLogEntry(
            id=e.id,
            actor_kind=e.actor_kind,
            actor_id=e.actor_id,
            actor_name=e.actor_name,
            what=e.what,
            why=e.why,
            at=e.at,
        )
        for e in entries
    ]


@router.get("/me/export", summary="Export all my data (PIPL art. 45)")
def export_me(
    principal: Principal = Depends(current_citizen), session: Session = Depends(get_session)
) -> dict[str, Any]:
    return identity_service.export_citizen(session, principal.id)


@router.delete("/me", status_code=204, summary="Erase my personal data (PIPL art. 47)")
def erase_me(
    principal: Principal = Depends(current_citizen), session: Session = Depends(get_session)
) -> None:
    identity_service.erase_citizen(session, principal.id)


# --- staff reading a citizen --------------------------------------------------------------------


@router.get(
    "/citizens/{citizen_id}",
    response_model=schemas.CitizenAdminOut,
    summary="Look up a citizen (logged in the citizen's access log)",
)
def read_citizen(
    citizen_id: int,
    why: str = Query(
        ..., min_length=3, max_length=500, description="Reason, shown to the citizen."
    ),
    principal: Principal = Depends(require_role("operator_admin", "reviewer")),
    session: Session = Depends(get_session),
) -> schemas.CitizenAdminOut:
    data = identity_service.read_citizen_as_staff(session, principal, citizen_id, why=why)
    data["bindings"] = [_binding_out(b) for b in data["bindings"]]
    return schemas.CitizenAdminOut(**data)


# --- consent: authorisation-code flow -----------------------------------------------------------


@router.get(
    "/bindings/authorize",
    response_model=schemas.AuthorizePreview,
    summary="Check an authorisation request before showing the consent page",
)
def authorize_preview(
    partner_id: int = Query(..., description="Partner id."),
    scenarios: str = Query(..., description="Comma-separated scenarios.", examples=["metro,bus"]),
    redirect_uri: str = Query(..., max_length=2000, description="Registered redirect URI."),
    session: Session = Depends(get_session),
) -> schemas.AuthorizePreview:
    partner, wanted = identity_service.authorize_preview(
        session,
        partner_id=partner_id,
        scenarios=scenarios.split(","),
        redirect_uri=redirect_uri,
    )
    return schemas.AuthorizePreview(
        partner_id=partner.id,
        partner_name=partner.name,
        scenarios=wanted,
        redirect_uri=redirect_uri,
    )


@router.post(
    "/bindings/authorize",
    response_model=schemas.AuthorizeOut,
    summary="The citizen consents: a one-time code and the redirect back to the partner",
)
def authorize(
    body: schemas.AuthorizeRequest,
    principal: Principal = Depends(current_citizen),
    session: Session = Depends(get_session),
) -> schemas.AuthorizeOut:
    grant = identity_service.authorize(
        session,
        principal,
        partner_id=body.partner_id,
        partner_user_id=body.partner_user_id,
        scenarios=body.scenarios,
        redirect_uri=body.redirect_uri,
        state=body.state,
    )
    return schemas.AuthorizeOut(
        code=grant.code, redirect_url=grant.redirect_url, expires_in=grant.expires_in
    )


@router.post(
    "/partner/bindings/token",
    response_model=schemas.PartnerBindingOut,
    summary="(Signed) exchange an authorisation code for the binding",
)
def exchange_code(
    body: schemas.TokenExchange,
    partner: PartnerPrincipal = Depends(partner_request),
    session: Session = Depends(get_session),
) -> schemas.PartnerBindingOut:
    binding = identity_service.exchange_code(
        session, partner, code=body.code, redirect_uri=body.redirect_uri
    )
    return schemas.PartnerBindingOut(
        binding_id=binding.id,
        partner_user_id=binding.partner_user_id,
        scenarios=list(binding.scenarios),
        bound_at=binding.bound_at,
    )


@router.get("/partner/me", summary="(Signed) the calling partner: check your signing code here")
def partner_me(partner: PartnerPrincipal = Depends(partner_request)) -> dict[str, Any]:
    return {
        "partner_id": partner.partner_id,
        "organisation_id": partner.organisation_id,
        "key_id": partner.key_id,
        "name": partner.name,
        "scenarios": sorted(partner.scenarios),
        "approved_until": partner.approved_until.isoformat() if partner.approved_until else None,
    }


# --- partner onboarding -------------------------------------------------------------------------


def _application_out(a: PartnerApplication) -> schemas.PartnerApplicationOut:
    return schemas.PartnerApplicationOut(
        id=a.id,
        name=a.name,
        licence_no=a.licence_no,
        scenarios=list(a.scenarios),
        data_collection=a.data_collection,
        redirect_uris=list(a.redirect_uris),
        status=a.status,
        approved_scenarios=list(a.approved_scenarios),
        valid_until=a.valid_until,
        review_note=a.review_note,
        partner_id=a.partner_id,
        created_at=a.created_at,
    )


@router.post(
    "/partners/applications",
    response_model=schemas.PartnerApplicationOut,
    status_code=201,
    summary=(
        "Apply to become a scenario partner (public, or staff of a partner organisation); with an"
        " Idempotency-Key a retry returns the same application"
    ),
)
def apply(
    body: schemas.PartnerApplicationIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
    principal: Principal | None = Depends(optional_principal),
    session: Session = Depends(get_session),
) -> schemas.PartnerApplicationOut:
    application = identity_service.apply_as_partner(
        session,
        principal,
        name=body.name,
        licence_no=body.licence_no,
        scenarios=body.scenarios,
        data_collection=body.data_collection,
        redirect_uris=body.redirect_uris,
        contact=body.contact,
        idempotency_key=idempotency_key,
    )
    return _application_out(application)


@router.get(
    "/partners/applications",
    response_model=list[schemas.PartnerApplicationOut],
    summary="Applications to review",
)
def list_applications(
    status: str | None = Query(None, pattern="^(pending|approved|rejected)$"),
    _: Principal = Depends(require_role("operator_admin", "reviewer")),
    session: Session = Depends(get_session),
) -> list[schemas.PartnerApplicationOut]:
    return [_application_out(a) for a in identity_service.list_applications(session, status=status)]


@router.get(
    "/partners/applications/{application_id}",
    response_model=schemas.PartnerApplicationOut,
    summary="One application",
)
def get_application(
    application_id: int,
    _: Principal = Depends(require_role("operator_admin", "reviewer")),
    session: Session = Depends(get_session),
) -> schemas.PartnerApplicationOut:
    return _application_out(identity_service.get_application(session, application_id))


@router.post(
    "/partners/applications/{application_id}/approve",
    summary=(
        "Approve named scenarios until a day; a new partner gets its first key (shown once; with"
        " an Idempotency-Key, a retry answers again with it)"
    ),
)
def approve_application(
    application_id: int,
    body: schemas.ApplicationApproval,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
    principal: Principal = Depends(require_role("operator_admin", "reviewer")),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    application, created = identity_service.approve_application(
        session,
        principal,
        application_id,
        scenarios=body.scenarios,
        valid_until=body.valid_until,
        note=body.note,
        idempotency_key=idempotency_key,
    )
    return {
        "application": _application_out(application).model_dump(mode="json"),
        "credentials": (
            schemas.PartnerCreatedOut(
                partner_id=created.partner_id,
                organisation_id=created.organisation_id,
                key_id=created.key_id,
                secret=created.secret,
            ).model_dump()
            if created
            else None
        ),
    }


@router.post(
    "/partners/applications/{application_id}/reject",
    response_model=schemas.PartnerApplicationOut,
    summary="Reject an application with a reason (with an Idempotency-Key, a retry is safe)",
)
def reject_application(
    application_id: int,
    body: schemas.ApplicationRejection,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
    principal: Principal = Depends(require_role("operator_admin", "reviewer")),
    session: Session = Depends(get_session),
) -> schemas.PartnerApplicationOut:
    application = identity_service.reject_application(
        session, principal, application_id, note=body.note, idempotency_key=idempotency_key
    )
    return _application_out(application)


@router.get("/partners", summary="Partners and their approvals")
def list_partners(
    _: Principal = Depends(require_role("operator_admin", "reviewer")),
    session: Session = Depends(get_session),
) -> list[dict[str, Any]]:
    return [identity_service.partner_summary(p) for p in identity_service.list_partners(session)]


@router.post(
    "/partners/{partner_id}/keys",
    response_model=schemas.KeyOut,
    status_code=201,
    summary=(
        "Rotate keys: a new key now, the old ones valid for a grace period; with an"
        " Idempotency-Key a retry returns the same key and secret"
    ),
)
def rotate_key(
    partner_id: int,
    body: schemas.KeyRotate | None = None,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
    principal: Principal = Depends(current_staff),
    session: Session = Depends(get_session),
) -> schemas.KeyOut:
    from datetime import timedelta

    hours = body.grace_hours if body is not None else 24
    key = identity_service.rotate_key(
        session,
        principal,
        partner_id,
        grace=timedelta(hours=hours),
        idempotency_key=idempotency_key,
    )
    return schemas.KeyOut(
        key_id=key.key_id, secret=key.secret, old_keys_valid_until=key.old_keys_valid_until
    )


@router.post("/partners/keys/{key_id}/revoke", status_code=204, summary="Revoke a key at once")
def revoke_key(
    key_id: str,
    principal: Principal = Depends(current_staff),
    session: Session = Depends(get_session),
) -> None:
    identity_service.revoke_key(session, principal, key_id)


__all__: list[Any] = ["router"]
