"""Identity routes: logins, the caller's own data (PIPL export and erasure), partners and consent."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from tanhui.identity import schemas
from tanhui.identity import service as identity_service
from tanhui.identity.auth import bearer_token, current_citizen, current_principal
from tanhui.identity.principal import Principal
from tanhui.kit.http import get_session

router = APIRouter(prefix="/v1", tags=["identity"])


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
    principal, token = identity_service.login_staff(
        session, username=body.username, password=body.password
    )
    return _login_out(principal, token)


@router.post("/auth/otp", response_model=schemas.OtpSent, summary="Send a one-time login code")
def request_otp(
    body: schemas.OtpRequest, session: Session = Depends(get_session)
) -> schemas.OtpSent:
    identity_service.request_otp(session, phone=body.phone)
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


__all__: list[Any] = ["router"]
