"""The identity API contract: logins, the caller, staff, partners, bindings, access log and export."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tanhui.identity.principal import ROLES

_PHONE = "13800138000"


class StaffLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(description="Staff username.", examples=["admin"], max_length=64)
    password: str = Field(description="Password.", examples=["admin-demo-2026"], max_length=256)


class OtpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(
        description="Mainland mobile number; +86 prefix allowed.", examples=[_PHONE], max_length=20
    )


class CitizenLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(description="The phone the code was sent to.", examples=[_PHONE])
    code: str = Field(description="The 6-digit one-time code.", examples=["123456"], max_length=12)


class PrincipalOut(BaseModel):
    kind: str = Field(description="citizen, staff or partner.", examples=["citizen"])
    id: int = Field(description="Citizen, staff or partner id.", examples=[42])
    roles: list[str] = Field(description="Staff roles (empty for citizens).", examples=[[]])
    organisation_id: int | None = Field(description="Staff's organisation.", examples=[None])
    display_name: str = Field(description="Name to show.", examples=["绿色出行者"])


class OrganisationOut(BaseModel):
    id: int = Field(description="Organisation id", examples=[12])
    name: str = Field(description="Name", examples=["深圳绿证核查中心"])
    kind: str = Field(
        description="platform, partner, merchant, project_owner, verifier, buyer or enterprise",
        examples=["verifier"],
    )


class LoginOut(BaseModel):
    token: str = Field(
        description="Bearer token: send as `Authorization: Bearer <token>`.",
        examples=["n3Q0...k"],
    )
    expires_in: int = Field(description="Seconds until the token expires.", examples=[43200])
    principal: PrincipalOut


class OtpSent(BaseModel):
    sent: bool = Field(description="A code was sent by SMS.", examples=[True])
    expires_in: int = Field(description="Seconds the code stays valid.", examples=[300])


class CitizenProfile(BaseModel):
    id: int = Field(description="Citizen id.", examples=[42])
    nickname: str | None = Field(description="Nickname.", examples=["绿色出行者"])
    district: str | None = Field(description="District of residence.", examples=["南山"])
    created_at: datetime = Field(description="First login (UTC).")


class MeOut(BaseModel):
    principal: PrincipalOut
    citizen: CitizenProfile | None = Field(
        None, description="The citizen's profile (citizens only)."
    )


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nickname: str | None = Field(
        None, description="Nickname.", examples=["绿色出行者"], max_length=50
    )
    district: str | None = Field(None, description="District.", examples=["南山"], max_length=50)


class AccessLogEntry(BaseModel):
    id: int = Field(description="Entry id.", examples=[1])
    actor_kind: str = Field(description="staff or partner.", examples=["staff"])
    actor_id: int = Field(description="Staff or partner id.", examples=[3])
    actor_name: str = Field(description="Who read the data.", examples=["审核员 王"])
    what: str = Field(description="What was read.", examples=["profile"])
    why: str = Field(description="Why it was read.", examples=["customer support ticket #12"])
    at: datetime = Field(description="When (UTC).")


class CitizenAdminOut(BaseModel):
    id: int = Field(description="Citizen id.", examples=[42])
    nickname: str | None = Field(description="Nickname.", examples=["绿色出行者"])
    district: str | None = Field(description="District.", examples=["南山"])
    created_at: datetime = Field(description="First login (UTC).")
    erased: bool = Field(description="The citizen erased their personal data.", examples=[False])
    bindings: list[BindingOut] = Field(description="Partner bindings.")


class BindingOut(BaseModel):
    id: int = Field(description="Binding id.", examples=[7])
    partner_id: int = Field(description="Partner id.", examples=[2])
    partner_name: str = Field(description="Partner name.", examples=["深圳地铁"])
    partner_user_id: str = Field(
        description="The citizen's account at the partner.", examples=["u-1"]
    )
    scenarios: list[str] = Field(description="Consented scenarios.", examples=[["metro"]])
    status: str = Field(description="active or revoked.", examples=["active"])
    bound_at: datetime = Field(description="When the binding was made (UTC).")
    revoked_at: datetime | None = Field(None, description="When it was revoked (UTC).")


class BindingScenariosUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenarios: list[str] = Field(
        description="The scenarios the citizen consents to (a subset of the partner's).",
        examples=[["metro"]],
        min_length=1,
        max_length=50,
    )


class AuthorizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner_id: int = Field(description="Partner asking for consent.", examples=[2])
    partner_user_id: str = Field(
        description="The citizen's account id at the partner.",
        examples=["u-1"],
        min_length=1,
        max_length=128,
    )
    scenarios: list[str] = Field(
        description="Scenarios the citizen consents to.", examples=[["metro", "bus"]], min_length=1
    )
    redirect_uri: str = Field(
        description="One of the partner's registered redirect URIs.",
        examples=["https://partner.example/tanhui/callback"],
        max_length=2000,
    )
    state: str | None = Field(
        None,
        description="Opaque value returned to the partner unchanged.",
        examples=["xyz"],
        max_length=500,
    )


class AuthorizeOut(BaseModel):
    code: str = Field(description="One-time authorisation code (10 minutes).", examples=["c0de"])
    redirect_url: str = Field(
        description="Where to send the browser: redirect_uri with code and state.",
        examples=["https://partner.example/tanhui/callback?code=c0de&state=xyz"],
    )
    expires_in: int = Field(description="Seconds the code stays valid.", examples=[600])


class AuthorizePreview(BaseModel):
    partner_id: int = Field(description="Partner id.", examples=[2])
    partner_name: str = Field(description="Partner name.", examples=["深圳地铁"])
    scenarios: list[str] = Field(description="Requested scenarios.", examples=[["metro"]])
    redirect_uri: str = Field(description="Checked redirect URI.")


class TokenExchange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="The authorisation code from the redirect.", examples=["c0de"])
    redirect_uri: str | None = Field(
        None, description="If given, must equal the one used for the authorisation."
    )


class PartnerBindingOut(BaseModel):
    binding_id: int = Field(description="Binding id.", examples=[7])
    partner_user_id: str = Field(description="The partner's user id.", examples=["u-1"])
    scenarios: list[str] = Field(description="Consented scenarios.", examples=[["metro"]])
    bound_at: datetime = Field(description="When (UTC).")


class PartnerApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="Organisation name.", examples=["深圳巴士集团"], min_length=1, max_length=200
    )
    licence_no: str = Field(
        description="Unified social credit code (统一社会信用代码, 18 characters).",
        examples=["91440300192241158P"],
        min_length=1,
        max_length=64,
    )
    scenarios: list[str] = Field(
        description="Scenarios applied for.", examples=[["bus"]], min_length=1, max_length=50
    )
    data_collection: str = Field(
        description="How behaviour data is collected (devices, systems, frequency).",
        examples=["IC card and QR-code validator records, pushed daily"],
        min_length=1,
        max_length=5000,
    )
    redirect_uris: list[str] = Field(
        default_factory=list,
        description="Redirect URIs for user authorisation.",
        examples=[["https://partner.example/tanhui/callback"]],
        max_length=20,
    )
    contact: str | None = Field(
        None,
        description="Contact person and phone or e-mail.",
        examples=["张工 ops@bus.example"],
        max_length=200,
    )


class PartnerApplicationOut(BaseModel):
    id: int = Field(description="Application id.", examples=[1])
    name: str = Field(description="Organisation name.", examples=["深圳巴士集团"])
    licence_no: str = Field(description="Licence number.", examples=["91440300192241158P"])
    scenarios: list[str] = Field(description="Scenarios applied for.", examples=[["bus"]])
    data_collection: str = Field(description="How data is collected.")
    redirect_uris: list[str] = Field(description="Redirect URIs.")
    status: str = Field(description="pending, approved or rejected.", examples=["pending"])
    approved_scenarios: list[str] = Field(description="Scenarios approved.", examples=[["bus"]])
    valid_until: date | None = Field(description="Approval valid through this day.")
    review_note: str | None = Field(description="Reviewer's note.")
    partner_id: int | None = Field(description="The partner created on approval.")
    created_at: datetime = Field(description="When applied (UTC).")


class ApplicationApproval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenarios: list[str] = Field(
        description="Approved scenarios (a subset of those applied for).",
        examples=[["bus"]],
        min_length=1,
    )
    valid_until: date = Field(
        description="Last day of the approval (platform time zone).", examples=["2027-12-31"]
    )
    note: str | None = Field(None, description="Reviewer's note.", max_length=2000)


class ApplicationRejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(
        description="Why the application was rejected.", min_length=1, max_length=2000
    )


class PartnerCreatedOut(BaseModel):
    partner_id: int = Field(description="Partner id.", examples=[2])
    organisation_id: int = Field(description="Partner organisation id.", examples=[5])
    key_id: str = Field(description="Key id: send as X-Tanhui-Key.", examples=["pk_abc"])
    secret: str = Field(description="HMAC secret, shown once.", examples=["s3cr3t"])


class KeyOut(BaseModel):
    key_id: str = Field(description="Key id.", examples=["pk_abc"])
    secret: str = Field(description="HMAC secret, shown once.", examples=["s3cr3t"])
    old_keys_valid_until: datetime | None = Field(
        description="Until when the previous keys keep working (UTC)."
    )


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_hours: int = Field(
        24, description="Hours the previous keys stay valid.", examples=[24], ge=0, le=24 * 30
    )


# --- staff accounts ---------------------------------------------------------------------------


class StaffOut(BaseModel):
    id: int = Field(description="Staff id.", examples=[3])
    username: str = Field(description="Login name.", examples=["reviewer.wang"])
    display_name: str = Field(description="Name to show.", examples=["审核员 王"])
    roles: list[str] = Field(description="Roles, sorted.", examples=[["reviewer"]])
    organisation_id: int | None = Field(description="Organisation the user acts for.", examples=[1])
    organisation_name: str | None = Field(
        description="That organisation's name.", examples=["Tanhui 平台运营方"]
    )
    active: bool = Field(
        description="False once deactivated: no login, no session.", examples=[True]
    )
    created_at: datetime = Field(
        description="When the account was created (UTC).", examples=["2026-03-01T02:00:00Z"]
    )
    last_login_at: datetime | None = Field(
        description="Last successful login (UTC).", examples=["2026-03-09T01:30:00Z"]
    )
    locked_until: datetime | None = Field(
        description="Login locked after wrong passwords until then (UTC).", examples=[None]
    )


class StaffCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(
        description="Login name: 2-64 letters, digits, '.', '_' or '-'.",
        examples=["reviewer.wang"],
        max_length=64,
    )
    password: str = Field(
        description="Initial password, at least 8 characters.",
        examples=["change-me-2026"],
        max_length=256,
    )
    roles: list[str] = Field(
        description="One or more of: " + ", ".join(sorted(ROLES)) + ".",
        examples=[["reviewer"]],
        min_length=1,
        max_length=len(ROLES),
    )
    organisation_id: int | None = Field(
        None, description="Organisation the user acts for.", examples=[1], ge=1
    )
    display_name: str | None = Field(
        None,
        description="Name to show (default: the username).",
        examples=["审核员 王"],
        max_length=100,
    )


class StaffUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(
        None, description="New name to show.", examples=["审核员 王"], max_length=100
    )
    roles: list[str] | None = Field(
        None,
        description="The new set of roles (replaces the old one; at least one).",
        examples=[["reviewer", "operator_admin"]],
        max_length=len(ROLES),
    )
    active: bool | None = Field(
        None,
        description="false deactivates the user and ends their sessions at once; true lets them "
        "log in again.",
        examples=[False],
    )


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(
        description="The new password, at least 8 characters; the user's sessions end.",
        examples=["temporary-2026"],
        max_length=256,
    )


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(
        description="The password in use now.", examples=["change-me-2026"], max_length=256
    )
    new_password: str = Field(
        description="The new password, at least 8 characters; other sessions end.",
        examples=["my-own-secret-2026"],
        max_length=256,
    )


class ExportOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    identity: dict[str, Any] = Field(description="Profile, bindings and access log.")


CitizenAdminOut.model_rebuild()
