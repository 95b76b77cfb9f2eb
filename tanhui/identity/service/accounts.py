"""Organisations, staff, citizens, one-time codes, session tokens and the access log."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import timedelta
from functools import lru_cache
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tanhui.identity.models import (
    AccessLog,
    Citizen,
    OneTimeCode,
    Organisation,
    Staff,
    StaffRole,
    Token,
)
from tanhui.identity.principal import ORGANISATION_KINDS, Principal
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import serialise_on
from tanhui.kit.errors import Conflict, Forbidden, InvalidInput, NotFound, TanhuiError, Unauthorized
from tanhui.kit.settings import get_settings

log = logging.getLogger("tanhui.identity")

STAFF_TOKEN_TTL = timedelta(hours=12)
CITIZEN_TOKEN_TTL = timedelta(days=30)
OTP_TTL = timedelta(minutes=5)
OTP_MAX_ATTEMPTS = 5
# At most this many codes per phone per window: each SMS costs money and can be used to harass.
OTP_WINDOW = timedelta(minutes=15)
OTP_MAX_PER_WINDOW = 5
# Staff passwords guard the console: a few wrong guesses in a row lock the account for a while.
STAFF_MAX_FAILURES = 5
STAFF_LOCKOUT = timedelta(minutes=15)


@lru_cache
def _hasher() -> PasswordHasher:
    # The cost is a setting: production keeps argon2's RFC 9106 profile; the test suite lowers it.
    settings = get_settings()
    return PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
    )


@lru_cache
def _dummy_hash() -> str:
    # Verified against when the username is unknown, so that a miss costs as much time as a hit.
    return _hasher().hash(secrets.token_hex(16))


# Chinese mainland mobile numbers (GB/T numbering plan): 11 digits starting 13-19.
_PHONE = re.compile(r"^1[3-9]\d{9}$")


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class LoginLocked(TanhuiError):
    status_code = 429
    code = "login_locked"


class InvalidOtp(Unauthorized):
    code = "invalid_otp"


class OtpRateLimited(TanhuiError):
    status_code = 429
    code = "otp_rate_limited"


class OtpDeliveryFailed(TanhuiError):
    status_code = 503
    code = "otp_delivery_failed"


class CitizenNotFound(NotFound):
    code = "citizen_not_found"


class CitizenErased(Conflict):
    code = "citizen_erased"


# --- helpers ------------------------------------------------------------------------------------


def keyed_hash(value: str, *, purpose: str) -> str:
    """HMAC-SHA256 of `value` under the platform secret, separated by purpose (hex)."""
    return hmac.new(
        get_settings().secret(), f"{purpose}\x00{value}".encode(), hashlib.sha256
    ).hexdigest()


def normalise_phone(phone: str) -> str:
    """11-digit mainland mobile number; accepts spaces, dashes and a +86/86 prefix."""
    digits = re.sub(r"[\s\-()]", "", phone or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not _PHONE.match(digits):
        raise InvalidInput(
            "phone must be an 11-digit mainland mobile number", code="invalid_phone", field="phone"
        )
    return digits


def phone_hash(phone: str) -> str:
    return keyed_hash(normalise_phone(phone), purpose="phone")


def mask_phone(phone: str) -> str:
    p = normalise_phone(phone)
    return f"{p[:3]}****{p[-4:]}"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _require_admin(actor: Principal | None) -> None:
    """None is the system itself (CLI, demo); people need operator_admin."""
    if actor is not None and not actor.has_role("operator_admin"):
        raise Forbidden("only an operator_admin may do this", code="missing_role")


# --- organisations and staff --------------------------------------------------------------------


def create_organisation(
    session: Session,
    actor: Principal | None,
    *,
    name: str,
    kind: str,
    licence_no: str | None = None,
) -> Organisation:
    _require_admin(actor)
    if kind not in ORGANISATION_KINDS:
        raise InvalidInput(
            f"unknown organisation kind {kind!r}", code="unknown_organisation_kind", field="kind"
        )
    if not name.strip():
        raise InvalidInput("name must not be empty", code="invalid_name", field="name")
    org = Organisation(name=name.strip(), kind=kind, licence_no=licence_no)
    session.add(org)
    session.flush()
    return org


def list_organisations(
    session: Session, *, kind: str | None = None, limit: int = 500
) -> list[Organisation]:
    """Organisations by name, optionally of one kind (e.g. the verifiers an operator can assign)."""
    stmt = select(Organisation).order_by(Organisation.name, Organisation.id).limit(limit)
    if kind is not None:
        stmt = stmt.where(Organisation.kind == kind)
    return list(session.scalars(stmt))


def get_organisation(session: Session, organisation_id: int) -> Organisation:
    org = session.get(Organisation, organisation_id)
    if org is None:
        raise NotFound(
            f"organisation {organisation_id} not found",
            code="organisation_not_found",
            field="organisation_id",
        )
    return org


def platform_organisation(session: Session) -> Organisation:
    """The operator's own organisation, created on first use."""
    org = session.scalar(
        select(Organisation).where(Organisation.kind == "platform").order_by(Organisation.id)
    )
    if org is None:
        org = create_organisation(session, None, name="Tanhui 平台运营方", kind="platform")
    return org


def staff_roles(session: Session, staff_id: int) -> frozenset[str]:
    return frozenset(session.scalars(select(StaffRole.role).where(StaffRole.staff_id == staff_id)))


def staff_principal(session: Session, staff: Staff) -> Principal:
    return Principal(
        kind="staff",
        id=staff.id,
        roles=staff_roles(session, staff.id),
        organisation_id=staff.organisation_id,
        display_name=staff.display_name,
    )


def check_not_locked(staff: Staff, *, field: str = "password") -> None:
    """LoginLocked while the lock earned by STAFF_MAX_FAILURES wrong passwords in a row lasts."""
    now = utcnow()
    if staff.locked_until is not None and staff.locked_until > now:
        wait = int((staff.locked_until - now).total_seconds()) + 1
        raise LoginLocked(
            f"too many wrong passwords; try again in {wait // 60 + 1} minutes",
            field=field,
            extra={"retry_after": wait},
        )


def count_wrong_password(session: Session, staff: Staff) -> None:
    """One more wrong password in a row; the STAFF_MAX_FAILURES-th locks the account for
    STAFF_LOCKOUT. The caller commits even though it then raises, or the count is lost."""
    staff.failed_logins += 1
    if staff.failed_logins >= STAFF_MAX_FAILURES:
        staff.failed_logins, staff.locked_until = 0, utcnow() + STAFF_LOCKOUT
    session.flush()


def login_staff(session: Session, *, username: str, password: str) -> tuple[Principal, str]:
    """Password login for staff. STAFF_MAX_FAILURES wrong passwords in a row lock the account for
    STAFF_LOCKOUT; the caller commits even when this raises, so that the count survives the failure."""
    staff = session.scalar(select(Staff).where(Staff.username == username.strip()))
    if staff is not None:
        check_not_locked(staff)
    try:
        _hasher().verify(staff.password_hash if staff else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        if staff is not None:
            count_wrong_password(session, staff)
        raise InvalidCredentials("wrong username or password") from None
    if staff is None or not staff.active:
        raise InvalidCredentials("wrong username or password")
    if _hasher().check_needs_rehash(staff.password_hash):
        staff.password_hash = _hasher().hash(password)
    staff.failed_logins, staff.locked_until = 0, None
    principal = staff_principal(session, staff)
    return principal, issue_token(session, principal)


# --- citizens and one-time codes -----------------------------------------------------------------


class OtpSender(Protocol):
    def send(self, phone: str, code: str) -> None: ...


class ConsoleOtpSender:
    """Development sender: writes the code to the log and remembers it for tests (`last_otp`)."""

    def __init__(self) -> None:
        self.outbox: dict[str, str] = {}

    def send(self, phone: str, code: str) -> None:
        self.outbox[phone] = code
        log.warning("one-time code for %s: %s (console sender, development only)", phone, code)


_console_sender = ConsoleOtpSender()
otp_sender: OtpSender = _console_sender


def set_otp_sender(sender: OtpSender) -> None:
    """Install a real SMS gateway (production wiring)."""
    global otp_sender
    otp_sender = sender


def last_otp(phone: str) -> str | None:
    """The last code the console sender sent to `phone` (tests and the demo)."""
    return _console_sender.outbox.get(normalise_phone(phone))


def _code_hash(p_hash: str, code: str) -> str:
    return keyed_hash(f"{p_hash}:{code}", purpose="otp")


class PendingOtp:
    """A stored code not yet sent. Send it only after the code is committed: a code sent first
    and then lost to a failed commit would be one the citizen can never log in with."""

    __slots__ = ("_code", "phone")

    def __init__(self, phone: str, code: str) -> None:
        self.phone, self._code = phone, code

    def send(self) -> None:
        try:
            otp_sender.send(self.phone, self._code)
        except Exception as exc:  # any gateway failure: the citizen may ask for another code
            log.exception("one-time code for %s could not be sent", self.phone)
            raise OtpDeliveryFailed(
                "the code could not be sent; try again in a moment", field="phone"
            ) from exc


def request_otp(session: Session, *, phone: str) -> PendingOtp:
    """Store a new code for the phone. The caller commits, then calls `.send()` on the result."""
    number = normalise_phone(phone)
    p_hash = phone_hash(number)
    # Two requests at once would both count 4 codes and both send a fifth: one waits for the other.
    serialise_on(session, f"otp:{p_hash}")
    now = utcnow()
    recent = session.scalar(
        select(func.count())
        .select_from(OneTimeCode)
        .where(OneTimeCode.phone_hash == p_hash, OneTimeCode.created_at > now - OTP_WINDOW)
    )
    if (recent or 0) >= OTP_MAX_PER_WINDOW:
        raise OtpRateLimited(
            "too many codes requested for this phone; try again later", field="phone"
        )
    code = f"{secrets.randbelow(10**6):06d}"
    session.add(
        OneTimeCode(
            phone_hash=p_hash,
            code_hash=_code_hash(p_hash, code),
            created_at=now,
            expires_at=now + OTP_TTL,
        )
    )
    session.flush()
    return PendingOtp(number, code)


def login_citizen(session: Session, *, phone: str, code: str) -> tuple[Principal, str]:
    """Check the newest unexpired code for the phone; creates the citizen on first login.

    A wrong code counts an attempt on the stored code before raising InvalidOtp: the caller must commit
    even on that error (the API route does), or the attempt limit would never bite.
    """
    p_hash = phone_hash(phone)
    now = utcnow()
    otp = session.scalar(
        select(OneTimeCode)
        .where(
            OneTimeCode.phone_hash == p_hash,
            OneTimeCode.used_at.is_(None),
            OneTimeCode.expires_at > now,
        )
        .order_by(OneTimeCode.id.desc())
        .limit(1)
    )
    if otp is None or otp.attempts >= OTP_MAX_ATTEMPTS:
        raise InvalidOtp("no valid code for this phone; request a new one", field="code")
    if not hmac.compare_digest(otp.code_hash, _code_hash(p_hash, code.strip())):
        otp.attempts += 1
        session.flush()
        raise InvalidOtp("wrong code", field="code")
    # Conditional update: of two concurrent logins with the same code, only one consumes it.
    used = session.execute(
        update(OneTimeCode)
        .where(OneTimeCode.id == otp.id, OneTimeCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidOtp("code already used", field="code")
    citizen = citizen_for_phone(session, phone)
    principal = citizen_principal(citizen)
    return principal, issue_token(session, principal)


def citizen_for_phone(
    session: Session,
    phone: str,
    *,
    create: bool = True,
    nickname: str | None = None,
    district: str | None = None,
) -> Citizen:
    p_hash = phone_hash(phone)
    citizen = session.scalar(select(Citizen).where(Citizen.phone_hash == p_hash))
    if citizen is None:
        if not create:
            raise CitizenNotFound("no citizen with this phone", field="phone")
        citizen = Citizen(phone_hash=p_hash, nickname=nickname, district=district)
        # A savepoint: a concurrent first login of the same phone loses the unique race, not the
        # caller's whole transaction.
        try:
            with session.begin_nested():
                session.add(citizen)
                session.flush()
        except IntegrityError:  # lost the race: use the winner's row
            found = session.scalar(select(Citizen).where(Citizen.phone_hash == p_hash))
            if found is None:
                raise
            citizen = found
    return citizen


def get_citizen(session: Session, citizen_id: int) -> Citizen:
    citizen = session.get(Citizen, citizen_id)
    if citizen is None:
        raise CitizenNotFound(f"citizen {citizen_id} not found", field="citizen_id")
    return citizen


def update_citizen_profile(
    session: Session, citizen_id: int, *, nickname: str | None, district: str | None
) -> Citizen:
    citizen = get_citizen(session, citizen_id)
    if citizen.erased_at is not None:
        raise CitizenErased("this account was erased")
    citizen.nickname = nickname
    citizen.district = district
    session.flush()
    return citizen


def citizen_display_name(citizen: Citizen) -> str:
    return citizen.nickname or f"用户{citizen.id}"


def citizen_principal(citizen: Citizen) -> Principal:
    return Principal(kind="citizen", id=citizen.id, display_name=citizen_display_name(citizen))


# --- tokens -------------------------------------------------------------------------------------


def issue_token(session: Session, principal: Principal) -> str:
    if principal.kind not in ("citizen", "staff"):
        raise InvalidInput("tokens are for citizens and staff", code="invalid_principal")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    ttl = STAFF_TOKEN_TTL if principal.kind == "staff" else CITIZEN_TOKEN_TTL
    session.add(
        Token(
            token_hash=_token_hash(token),
            kind=principal.kind,
            subject_id=principal.id,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    session.flush()
    return token


def principal_for_token(session: Session, token: str) -> Principal | None:
    """The principal a live token belongs to, or None (unknown, expired, revoked, deactivated)."""
    row = session.scalar(select(Token).where(Token.token_hash == _token_hash(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    if row.kind == "staff":
        staff = session.get(Staff, row.subject_id)
        if staff is None or not staff.active:
            return None
        return staff_principal(session, staff)
    citizen = session.get(Citizen, row.subject_id)
    if citizen is None or citizen.erased_at is not None:
        return None
    return citizen_principal(citizen)


def revoke_token(session: Session, token: str) -> None:
    session.execute(
        update(Token)
        .where(Token.token_hash == _token_hash(token), Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def revoke_tokens_of(
    session: Session, *, kind: str, subject_id: int, keep: str | None = None
) -> None:
    """Revoke every live token of a citizen or staff member, except `keep` (the caller's own
    session, when a person changing their password ends only their other sessions)."""
    stmt = update(Token).where(
        Token.kind == kind, Token.subject_id == subject_id, Token.revoked_at.is_(None)
    )
    if keep is not None:
        stmt = stmt.where(Token.token_hash != _token_hash(keep))
    session.execute(stmt.values(revoked_at=utcnow()).execution_options(synchronize_session=False))


# --- access log ---------------------------------------------------------------------------------


def log_access(session: Session, *, citizen_id: int, actor: Principal, what: str, why: str) -> None:
    """Record that staff or a partner read a citizen's personal data; the citizen sees it."""
    session.add(
        AccessLog(
            citizen_id=citizen_id,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_name=actor.display_name[:200],
            what=what[:200],
            why=why[:500],
            at=utcnow(),
        )
    )
    session.flush()


def access_log(
    session: Session, citizen_id: int, *, limit: int = 100, before_id: int | None = None
) -> list[AccessLog]:
    stmt = select(AccessLog).where(AccessLog.citizen_id == citizen_id)
    if before_id is not None:
        stmt = stmt.where(AccessLog.id < before_id)
    return list(session.scalars(stmt.order_by(AccessLog.id.desc()).limit(limit)))
