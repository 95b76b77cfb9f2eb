"""Scenario partners (场景方): onboarding, approval periods, keys, and signed-request verification."""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tanhui.identity import signing
from tanhui.identity.models import Nonce, Organisation, Partner, PartnerApplication, PartnerKey
from tanhui.identity.principal import PartnerPrincipal, Principal
from tanhui.identity.service.accounts import create_organisation, get_organisation
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import for_update, insert_ignore
from tanhui.kit.errors import (
    Conflict,
    Forbidden,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    Unauthorized,
)
from tanhui.kit.fingerprint import check_idempotency_key, fingerprint
from tanhui.kit.settings import get_settings

DEFAULT_GRACE = timedelta(hours=24)
# Kept well past the window in which a timestamp stays acceptable (2 x skew), so a replay can
# never find its nonce already pruned.
NONCE_RETENTION = timedelta(seconds=3 * signing.MAX_SKEW_SECONDS)
_SCENARIO = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")


# --- errors: one code per reason, so a partner's engineer knows what to fix ----------------------


class MissingSignatureHeaders(Unauthorized):
    code = "missing_signature_headers"


class MalformedSignatureHeaders(Unauthorized):
    code = "malformed_signature_headers"


class UnknownKey(Unauthorized):
    code = "unknown_key"


class KeyRevoked(Unauthorized):
    code = "key_revoked"


class ClockSkew(Unauthorized):
    code = "clock_skew"


class BadSignature(Unauthorized):
    code = "bad_signature"


class NonceReused(Unauthorized):
    code = "nonce_reused"


class PartnerApprovalLapsed(Forbidden):
    code = "partner_approval_lapsed"


class PartnerSuspended(Forbidden):
    code = "partner_suspended"


class PartnerNotFound(NotFound):
    code = "partner_not_found"


class ApplicationNotFound(NotFound):
    code = "application_not_found"


class ApplicationNotPending(Conflict):
    code = "application_not_pending"


@dataclass(frozen=True, slots=True)
class PartnerCreated:
    partner_id: int
    organisation_id: int
    key_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    secret: str
    old_keys_valid_until: datetime | None


# --- secrets at rest ------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _fernet(platform_secret: bytes) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"tanhui identity partner-key v1",
    ).derive(platform_secret)
    return Fernet(base64.urlsafe_b64encode(key))


def _encrypt(secret: str) -> str:
    return _fernet(get_settings().secret()).encrypt(secret.encode()).decode()


def _decrypt(token: str) -> str | None:
    try:
        return _fernet(get_settings().secret()).decrypt(token.encode()).decode()
    except InvalidToken:
        # The platform secret changed since the key was made: the key is unusable, not a crash.
        return None


# --- partners and keys ----------------------------------------------------------------------------


def validate_scenarios(scenarios: Iterable[str], *, field: str = "scenarios") -> list[str]:
    result = sorted({s.strip() for s in scenarios if s.strip()})
    if not result:
        raise InvalidInput("name at least one scenario", code="invalid_scenarios", field=field)
    for s in result:
        if not _SCENARIO.match(s):
            raise InvalidInput(
                f"scenario {s!r}: lowercase letters, digits, '_' or '-'",
                code="invalid_scenarios",
                field=field,
            )
    return result


def validate_redirect_uris(uris: Iterable[str]) -> list[str]:
    result = []
    for uri in uris:
        # https only, except for local development.
        if not re.match(
            r"^(https://[^\s#]+|http://(localhost|127\.0\.0\.1)(:\d+)?(/[^\s#]*)?)$", uri
        ):
            raise InvalidInput(
                f"redirect URI {uri!r} must be https (or http://localhost) without a fragment",
                code="invalid_redirect_uri",
                field="redirect_uris",
            )
        result.append(uri)
    return result


def _require_admin(actor: Principal | None, *roles: str) -> None:
    if actor is not None and not actor.has_role(*(roles or ("operator_admin",))):
        raise Forbidden(
            f"requires one of the roles: {', '.join(roles or ('operator_admin',))}",
            code="missing_role",
        )


def _new_key(session: Session, partner_id: int, **columns: Any) -> tuple[str, str]:
    key_id = "pk_" + secrets.token_hex(12)
    secret = secrets.token_urlsafe(32)
    session.add(
        PartnerKey(
            key_id=key_id, partner_id=partner_id, secret_encrypted=_encrypt(secret), **columns
        )
    )
    session.flush()
    return key_id, secret


def create_partner(
    session: Session,
    actor: Principal | None,
    *,
    name: str,
    scenarios: list[str],
    valid_until: date | None = None,
    redirect_uris: list[str] | None = None,
    licence_no: str | None = None,
    organisation_id: int | None = None,
    first_key_idempotency_key: str | None = None,
) -> PartnerCreated:
    """A partner approved for `scenarios` through `valid_until` (inclusive), with its first key."""
    _require_admin(actor)
    approved = validate_scenarios(scenarios)
    uris = validate_redirect_uris(redirect_uris or [])
    if organisation_id is None:
        org = create_organisation(session, None, name=name, kind="partner", licence_no=licence_no)
    else:
        org = get_organisation(session, organisation_id)
        if org.kind != "partner":
            raise InvalidInput(
                "the organisation is not of kind partner",
                code="not_a_partner_organisation",
                field="organisation_id",
            )
        if session.scalar(select(Partner.id).where(Partner.organisation_id == org.id)):
            raise Conflict("this organisation already is a partner", code="partner_exists")
    partner = Partner(
        organisation_id=org.id,
        name=name.strip() or org.name,
        scenarios=approved,
        approved_until=valid_until,
        redirect_uris=uris,
    )
    session.add(partner)
    session.flush()
    key_id, secret = _new_key(session, partner.id, idempotency_key=first_key_idempotency_key)
    return PartnerCreated(partner.id, org.id, key_id, secret)


def get_partner(session: Session, partner_id: int) -> Partner:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise PartnerNotFound(f"partner {partner_id} not found", field="partner_id")
    return partner


def partner_for_organisation(session: Session, organisation_id: int) -> Partner | None:
    return session.scalar(select(Partner).where(Partner.organisation_id == organisation_id))


def list_partners(session: Session) -> list[Partner]:
    return list(session.scalars(select(Partner).order_by(Partner.id)))


def approval_lapsed(partner: Partner, *, at: datetime | None = None) -> bool:
    if partner.approved_until is None:
        return False
    today = (at or utcnow()).astimezone(get_settings().zone).date()
    return today > partner.approved_until


def check_partner_active(partner: Partner, *, at: datetime | None = None) -> None:
    if partner.status != "active":
        raise PartnerSuspended(f"partner {partner.id} is suspended")
    if approval_lapsed(partner, at=at):
        raise PartnerApprovalLapsed(
            f"the approval of partner {partner.id} ended on {partner.approved_until}; "
            "apply for a renewal",
            extra={"approved_until": str(partner.approved_until)},
        )


def update_partner(
    session: Session,
    actor: Principal | None,
    partner_id: int,
    *,
    scenarios: list[str] | None = None,
    valid_until: date | None = None,
    redirect_uris: list[str] | None = None,
    status: str | None = None,
) -> Partner:
    _require_admin(actor, "operator_admin", "reviewer")
    partner = get_partner(session, partner_id)
    if scenarios is not None:
        partner.scenarios = validate_scenarios(scenarios)
    if valid_until is not None:
        partner.approved_until = valid_until
    if redirect_uris is not None:
        partner.redirect_uris = validate_redirect_uris(redirect_uris)
    if status is not None:
        if status not in ("active", "suspended"):
            raise InvalidInput("status: active or suspended", code="invalid_status", field="status")
        partner.status = status
    session.flush()
    return partner


def _may_manage_keys(session: Session, actor: Principal | None, partner: Partner) -> None:
    if actor is None or actor.has_role("operator_admin"):
        return
    if actor.kind == "staff" and actor.organisation_id == partner.organisation_id:
        return
    raise Forbidden(
        "only an operator_admin or the partner's own staff may manage its keys", code="missing_role"
    )


def rotate_key(
    session: Session,
    actor: Principal | None,
    partner_id: int,
    *,
    grace: timedelta = DEFAULT_GRACE,
    idempotency_key: str | None = None,
) -> NewKey:
    """A new key valid at once; the partner's older live keys stay valid for `grace`, then expire.

    With `idempotency_key`, a rotation sent again answers with the key it made, secret included
    (its answer may have been lost, and the secret is shown nowhere else); another rotation under
    that key is refused."""
    partner = get_partner(session, partner_id)
    _may_manage_keys(session, actor, partner)
    if grace < timedelta(0):
        raise InvalidInput("grace must not be negative", code="invalid_grace", field="grace_hours")
    check_idempotency_key(idempotency_key)
    digest = fingerprint({"partner_id": partner.id, "grace_s": grace.total_seconds()})
    # Stored apart from the names the platform gives keys itself (a first key: application:<id>).
    stored = f"rotate:{idempotency_key}" if idempotency_key is not None else None
    earlier = _key_made_under(session, stored)
    if earlier is None:
        try:
            with session.begin_nested():  # a concurrent retry may store the key first
                return _rotate(session, partner.id, grace, stored, digest)
        except IntegrityError:
            earlier = _key_made_under(session, stored)
            if earlier is None:
                raise
    if earlier.request_hash != digest:
        raise IdempotencyConflict(idempotency_key or "")
    return NewKey(earlier.key_id, _stored_secret(earlier), earlier.created_at + grace)


def _rotate(
    session: Session, partner_id: int, grace: timedelta, idempotency_key: str | None, digest: str
) -> NewKey:
    now = utcnow()
    until = now + grace
    session.execute(
        update(PartnerKey)
        .where(
            PartnerKey.partner_id == partner_id,
            PartnerKey.revoked_at.is_(None),
            (PartnerKey.expires_at.is_(None)) | (PartnerKey.expires_at > until),
        )
        .values(expires_at=until)
        .execution_options(synchronize_session=False)
    )
    key_id, secret = _new_key(
        session,
        partner_id,
        created_at=now,
        idempotency_key=idempotency_key,
        request_hash=digest if idempotency_key is not None else None,
    )
    return NewKey(key_id, secret, until)


def _stored_secret(key: PartnerKey) -> str:
    """A key's secret, for the answer to a retried request that made the key."""
    secret = _decrypt(key.secret_encrypted)
    if secret is None:
        raise Conflict("the key's secret can no longer be read; rotate the key", field="key_id")
    return secret


def _key_made_under(session: Session, idempotency_key: str | None) -> PartnerKey | None:
    if idempotency_key is None:
        return None
    return session.scalars(
        select(PartnerKey).where(PartnerKey.idempotency_key == idempotency_key)
    ).first()


def revoke_key(session: Session, actor: Principal | None, key_id: str) -> PartnerKey:
    key = session.scalar(select(PartnerKey).where(PartnerKey.key_id == key_id))
    if key is None:
        raise NotFound(f"unknown key {key_id!r}", code="unknown_key", field="key_id")
    _may_manage_keys(session, actor, get_partner(session, key.partner_id))
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key


def partner_keys(session: Session, partner_id: int) -> list[PartnerKey]:
    return list(
        session.scalars(
            select(PartnerKey).where(PartnerKey.partner_id == partner_id).order_by(PartnerKey.id)
        )
    )


# --- request verification -------------------------------------------------------------------------


def verify_partner_request(
    session: Session,
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
    remember: bool = True,
) -> PartnerPrincipal:
    """Check a signed partner request (see tanhui.identity.signing) and remember its nonce.

    `remember=False` only reads: the caller must then `remember_nonce` in the transaction that acts
    on the request (the batch endpoint verifies in a read transaction and writes in another).

    Order matters: the signature is checked before the nonce is stored, so nobody without the secret
    can burn a partner's nonces; the approval is checked last (403, not 401) because the caller did
    prove who it is.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    values = {h: lower.get(h.lower(), "").strip() for h in signing.HEADERS}
    missing = [h for h, v in values.items() if not v]
    if missing:
        raise MissingSignatureHeaders(f"missing headers: {', '.join(missing)}", field=missing[0])
    key_id = values[signing.KEY_HEADER]
    timestamp_text = values[signing.TIMESTAMP_HEADER]
    nonce = values[signing.NONCE_HEADER]
    signature = values[signing.SIGNATURE_HEADER]
    if not re.fullmatch(r"\d{1,12}", timestamp_text):
        raise MalformedSignatureHeaders(
            "X-Tanhui-Timestamp must be Unix seconds", field=signing.TIMESTAMP_HEADER
        )
    if not signing.NONCE_MIN <= len(nonce) <= signing.NONCE_MAX or not nonce.isprintable():
        raise MalformedSignatureHeaders(
            f"X-Tanhui-Nonce must have {signing.NONCE_MIN}-{signing.NONCE_MAX} characters",
            field=signing.NONCE_HEADER,
        )
    if len(key_id) > 64:
        raise UnknownKey("unknown key", field=signing.KEY_HEADER)

    now = now or utcnow()
    key = session.scalar(select(PartnerKey).where(PartnerKey.key_id == key_id))
    if key is None:
        raise UnknownKey(f"unknown key {key_id!r}", field=signing.KEY_HEADER)
    if key.revoked_at is not None:
        raise KeyRevoked(f"key {key_id} was revoked", field=signing.KEY_HEADER)
    if key.expires_at is not None and key.expires_at <= now:
        raise KeyRevoked(
            f"key {key_id} expired at {key.expires_at.isoformat()} after a rotation",
            field=signing.KEY_HEADER,
        )
    skew = abs(int(now.timestamp()) - int(timestamp_text))
    if skew > signing.MAX_SKEW_SECONDS:
        raise ClockSkew(
            f"timestamp is {skew} s from the server clock (max {signing.MAX_SKEW_SECONDS} s)",
            field=signing.TIMESTAMP_HEADER,
            extra={"server_time": int(now.timestamp())},
        )
    secret = _decrypt(key.secret_encrypted)
    if not secret or not any(
        hmac.compare_digest(
            signing.sign(secret, method, sent, timestamp_text, nonce, body), signature.lower()
        )
        for sent in _paths_as_sent(path)
    ):
        raise BadSignature(
            "signature does not match METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nhex(sha256(body))",
            field=signing.SIGNATURE_HEADER,
        )
    if remember:
        remember_nonce(session, key_id, nonce, now=now)
    partner = get_partner(session, key.partner_id)
    check_partner_active(partner, at=now)
    return PartnerPrincipal(
        partner_id=partner.id,
        organisation_id=partner.organisation_id,
        key_id=key_id,
        name=partner.name,
        scenarios=frozenset(partner.scenarios),
        approved_until=partner.approved_until,
    )


def _paths_as_sent(path: str) -> list[str]:
    """The paths the partner may have signed for a request that reached us at `path`.

    The path it sent, which is the one we received unless the platform's public address has a
    path of its own (`base_url` https://example.gov/carbon) and a gateway strips that prefix
    before forwarding: then the partner signed /carbon/v1/... and we see /v1/... Both are
    accepted, so a partner that signs the path as sent and one that signs the API path (as the
    guide's clients do) both work, wherever the platform is mounted."""
    prefix = urlsplit(get_settings().base_url).path.rstrip("/")
    if not prefix or path == prefix or path.startswith(prefix + "/"):
        return [path]
    return [path, prefix + path]


def remember_nonce(
    session: Session, key_id: str, nonce: str, *, now: datetime | None = None
) -> None:
    """Store a verified request's nonce; NonceReused (401) if this key used it before."""
    now = now or utcnow()
    # RETURNING rather than rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
    stored = session.execute(
        insert_ignore(session, Nonce.__table__, ["key_id", "nonce"])  # type: ignore[arg-type]
        .values(key_id=key_id, nonce=nonce, created_at=now)
        .returning(Nonce.__table__.c.id)
    ).scalar_one_or_none()
    if stored is None:
        raise NonceReused("this nonce was already used with this key", field=signing.NONCE_HEADER)
    # Amortised pruning: one request in 256 deletes the expired nonces, so nothing needs scheduling.
    if secrets.randbelow(256) == 0:
        prune_nonces(session, now=now)


def prune_nonces(session: Session, *, now: datetime | None = None) -> int:
    """Delete nonces too old to matter (their timestamps can no longer pass the skew check)."""
    cutoff = (now or utcnow()) - NONCE_RETENTION
    result = session.execute(
        delete(Nonce).where(Nonce.created_at < cutoff).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- onboarding applications ----------------------------------------------------------------------


def apply_as_partner(
    session: Session,
    actor: Principal | None,
    *,
    name: str,
    licence_no: str,
    scenarios: list[str],
    data_collection: str,
    redirect_uris: list[str] | None = None,
    contact: str | None = None,
    idempotency_key: str | None = None,
) -> PartnerApplication:
    """An organisation applies (public, or staff of an existing partner organisation: a renewal).

    With `idempotency_key`, the same application sent again returns the one it created, and a
    different one under that key is refused."""
    organisation_id = None
    staff_id = None
    if actor is not None and actor.kind == "staff" and actor.organisation_id is not None:
        org = session.get(Organisation, actor.organisation_id)
        if org is not None and org.kind == "partner":
            organisation_id, staff_id = org.id, actor.id
    check_idempotency_key(idempotency_key)
    application = PartnerApplication(
        name=name.strip(),
        licence_no=licence_no.strip(),
        scenarios=validate_scenarios(scenarios),
        data_collection=data_collection.strip(),
        redirect_uris=validate_redirect_uris(redirect_uris or []),
        contact=contact,
        organisation_id=organisation_id,
        applied_by_staff_id=staff_id,
        idempotency_key=idempotency_key,
    )
    if not application.name or not application.licence_no or not application.data_collection:
        raise InvalidInput(
            "name, licence_no and data_collection are required", code="incomplete_application"
        )
    for field, value, most in (
        ("name", application.name, 200),
        ("licence_no", application.licence_no, 64),
        ("data_collection", application.data_collection, 5000),
        ("contact", contact or "", 200),
    ):
        if len(value) > most:
            raise InvalidInput(
                f"{field} has at most {most} characters", code="too_long", field=field
            )
    if idempotency_key is None:
        session.add(application)
        session.flush()
        return application
    application.request_hash = fingerprint(
        {
            "name": application.name,
            "licence_no": application.licence_no,
            "scenarios": application.scenarios,
            "data_collection": application.data_collection,
            "redirect_uris": application.redirect_uris,
            "contact": contact,
            "organisation_id": organisation_id,
        }
    )
    earlier = _applied_with(session, idempotency_key)
    if earlier is None:
        try:
            with session.begin_nested():  # a concurrent retry may store the key first
                session.add(application)
                session.flush()
            return application
        except IntegrityError:
            earlier = _applied_with(session, idempotency_key)
            if earlier is None:
                raise
    if earlier.request_hash != application.request_hash:
        raise IdempotencyConflict(idempotency_key)
    return earlier


def _applied_with(session: Session, idempotency_key: str) -> PartnerApplication | None:
    return session.scalars(
        select(PartnerApplication).where(PartnerApplication.idempotency_key == idempotency_key)
    ).first()


def get_application(session: Session, application_id: int) -> PartnerApplication:
    application = session.get(PartnerApplication, application_id)
    if application is None:
        raise ApplicationNotFound(f"application {application_id} not found", field="id")
    return application


def list_applications(
    session: Session,
    *,
    status: str | None = None,
    decided: bool = False,
    limit: int | None = None,
) -> list[PartnerApplication]:
    """Newest first: of one status, or only the decided ones, or all; at most `limit`."""
    stmt = select(PartnerApplication)
    if status:
        stmt = stmt.where(PartnerApplication.status == status)
    if decided:
        stmt = stmt.where(PartnerApplication.status != "pending")
    return list(session.scalars(stmt.order_by(PartnerApplication.id.desc()).limit(limit)))


def _pending(
    session: Session, application_id: int, decision_key: str | None = None
) -> PartnerApplication:
    """The application, locked until the decision commits: of two reviewers deciding it at once
    (PostgreSQL), the second waits and then finds it decided, so one partner is ever created.
    A decided one is returned only to a retry of that decision (the same `decision_key`)."""
    check_idempotency_key(decision_key)
    stmt = (
        select(PartnerApplication)
        .where(PartnerApplication.id == application_id)
        .execution_options(populate_existing=True)
    )
    application = session.scalars(for_update(session, stmt)).one_or_none()
    if application is None:
        raise ApplicationNotFound(f"application {application_id} not found", field="id")
    if application.status != "pending" and (
        decision_key is None or application.decision_key != decision_key
    ):
        raise ApplicationNotPending(f"application {application_id} is {application.status}")
    return application


def approve_application(
    session: Session,
    actor: Principal | None,
    application_id: int,
    *,
    scenarios: list[str],
    valid_until: date,
    note: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[PartnerApplication, PartnerCreated | None]:
    """Approve named scenarios until a day. A first approval creates the partner and its first key
    (returned once); a renewal of an existing partner updates its scenarios and period only.

    With `idempotency_key`, the approval sent again answers as the first did, the new partner's
    key and secret included (the reviewer's page may have been lost with them); another decision
    under that key is refused."""
    _require_admin(actor, "operator_admin", "reviewer")
    application = _pending(session, application_id, idempotency_key)
    approved = validate_scenarios(scenarios)
    if application.status != "pending":  # this decision, sent again
        decided = (application.status, application.approved_scenarios, application.valid_until)
        if decided != ("approved", approved, valid_until) or application.review_note != note:
            raise IdempotencyConflict(idempotency_key or "")
        return application, _first_key(session, application)
    extra = set(approved) - set(application.scenarios)
    if extra:
        raise InvalidInput(
            f"not applied for: {', '.join(sorted(extra))}",
            code="scenario_not_applied",
            field="scenarios",
        )
    if valid_until < utcnow().astimezone(get_settings().zone).date():
        raise InvalidInput("valid_until is in the past", code="invalid_date", field="valid_until")
    created = None
    partner = (
        partner_for_organisation(session, application.organisation_id)
        if application.organisation_id
        else None
    )
    if partner is None:
        created = create_partner(
            session,
            None,
            name=application.name,
            scenarios=approved,
            valid_until=valid_until,
            redirect_uris=application.redirect_uris,
            licence_no=application.licence_no,
            organisation_id=application.organisation_id,
            first_key_idempotency_key=_first_key_name(application),
        )
        partner = get_partner(session, created.partner_id)
    else:
        partner.scenarios = approved
        partner.approved_until = valid_until
        if application.redirect_uris:
            partner.redirect_uris = application.redirect_uris
    application.status = "approved"
    application.approved_scenarios = approved
    application.valid_until = valid_until
    _decided(application, actor, note, idempotency_key)
    application.partner_id = partner.id
    application.organisation_id = partner.organisation_id
    session.flush()
    return application, created


def _first_key_name(application: PartnerApplication) -> str:
    return f"application:{application.id}"


def _first_key(session: Session, application: PartnerApplication) -> PartnerCreated | None:
    """The key the approval of `application` created with its partner (None: a renewal)."""
    key = _key_made_under(session, _first_key_name(application))
    if key is None or application.partner_id is None or application.organisation_id is None:
        return None
    return PartnerCreated(
        application.partner_id, application.organisation_id, key.key_id, _stored_secret(key)
    )


def _decided(
    application: PartnerApplication,
    actor: Principal | None,
    note: str | None,
    decision_key: str | None,
) -> None:
    application.review_note = note
    application.reviewed_by_staff_id = actor.id if actor and actor.kind == "staff" else None
    application.reviewed_at = utcnow()
    application.decision_key = decision_key


def reject_application(
    session: Session,
    actor: Principal | None,
    application_id: int,
    *,
    note: str,
    idempotency_key: str | None = None,
) -> PartnerApplication:
    """Reject with a reason. With `idempotency_key`, the rejection sent again answers as the first
    did; another decision under that key is refused."""
    _require_admin(actor, "operator_admin", "reviewer")
    application = _pending(session, application_id, idempotency_key)
    if application.status != "pending":  # this decision, sent again
        if (application.status, application.review_note) != ("rejected", note):
            raise IdempotencyConflict(idempotency_key or "")
        return application
    application.status = "rejected"
    _decided(application, actor, note, idempotency_key)
    session.flush()
    return application


def partner_summary(partner: Partner) -> dict[str, Any]:
    return {
        "partner_id": partner.id,
        "organisation_id": partner.organisation_id,
        "name": partner.name,
        "scenarios": list(partner.scenarios),
        "approved_until": partner.approved_until.isoformat() if partner.approved_until else None,
        "redirect_uris": list(partner.redirect_uris),
        "status": partner.status,
    }
