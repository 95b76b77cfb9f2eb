"""Staff accounts (工作人员): create, list, roles, deactivation and passwords.

Deactivating a staff user ends their access at once: the flag refuses new logins and every live token
is revoked, so a console session or a bearer token fails on its next request. Roles need no such
step: `principal_for_token` reads them on every request.

The platform always keeps one active operator_admin, or nobody could manage staff any more (the CLI
is the only way back). Every change that could take the last one away locks the active
operator_admins' rows first (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers anyway),
so two admins deactivating each other at the same moment cannot both succeed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tanhui.identity.models import Organisation, Staff, StaffRole, Token
from tanhui.identity.principal import ROLES, Principal
from tanhui.identity.service.accounts import (
    _hasher,
    _require_admin,
    check_not_locked,
    count_wrong_password,
    get_organisation,
    revoke_tokens_of,
)
from tanhui.kit.dialect import for_update
from tanhui.kit.errors import Conflict, Forbidden, IdempotencyConflict, InvalidInput, NotFound
from tanhui.kit.fingerprint import check_idempotency_key, fingerprint

ADMIN_ROLE = "operator_admin"
PASSWORD_MIN = 8
# Argon2 hashes any length, but a login body is capped at 256 characters (schemas.StaffLogin):
# a longer password could be set and never used.
PASSWORD_MAX = 256
_USERNAME = re.compile(r"[A-Za-z0-9_.\-]{2,64}")
_DISPLAY_NAME_MAX = 100  # the column's length


class StaffNotFound(NotFound):
    code = "staff_not_found"


class LastOperatorAdmin(Conflict):
    code = "last_operator_admin"


class SelfDeactivation(Conflict):
    code = "self_deactivation"


class WrongPassword(Forbidden):
    code = "wrong_password"


@dataclass(frozen=True, slots=True)
class StaffView:
    """A staff user as an operator sees them (never the password hash)."""

    id: int
    username: str
    display_name: str
    roles: list[str]
    organisation_id: int | None
    organisation_name: str | None
    active: bool
    created_at: datetime
    # When the newest session token was issued: staff tokens are issued only by a login and are
    # never deleted, so this is the last login without a column of its own.
    last_login_at: datetime | None
    locked_until: datetime | None


# --- checks -------------------------------------------------------------------------------------


def _check_password(password: str, *, field: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(
            f"password must have at least {PASSWORD_MIN} characters",
            code="weak_password",
            field=field,
        )
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(
            f"password must have at most {PASSWORD_MAX} characters",
            code="password_too_long",
            field=field,
        )


def _check_roles(roles: Iterable[str], *, allow_none: bool = False) -> list[str]:
    role_set = sorted(set(roles))
    for role in role_set:
        if role not in ROLES:
            raise InvalidInput(f"unknown role {role!r}", code="unknown_role", field="roles")
    if not role_set and not allow_none:
        raise InvalidInput("give at least one role", code="no_roles", field="roles")
    return role_set


def _check_display_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > _DISPLAY_NAME_MAX:
        raise InvalidInput(
            f"display name: 1-{_DISPLAY_NAME_MAX} characters",
            code="invalid_display_name",
            field="display_name",
        )
    # Control characters (a NUL above all, which PostgreSQL text cannot hold) have no place in a name.
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise InvalidInput(
            "display name: no control characters",
            code="invalid_display_name",
            field="display_name",
        )
    return name


# --- reading ------------------------------------------------------------------------------------


def get_staff(session: Session, staff_id: int, *, lock: bool = False) -> Staff:
    stmt = select(Staff).where(Staff.id == staff_id)
    if lock:
        stmt = for_update(session, stmt)
    staff = session.scalars(stmt).one_or_none()
    if staff is None:
        raise StaffNotFound(f"staff {staff_id} not found", field="staff_id")
    return staff


def get_staff_by_username(session: Session, username: str) -> Staff:
    staff = session.scalar(select(Staff).where(Staff.username == username.strip()))
    if staff is None:
        raise StaffNotFound(f"no staff user {username.strip()!r}", field="username")
    return staff


def _views(session: Session, staff_id: int | None = None) -> list[StaffView]:
    last_login = (
        select(func.max(Token.created_at))
        .where(Token.kind == "staff", Token.subject_id == Staff.id)
        .correlate(Staff)
        .scalar_subquery()
    )
    stmt = (
        select(
            Staff.id,
            Staff.username,
            Staff.display_name,
            Staff.organisation_id,
            Organisation.name,
            Staff.active,
            Staff.created_at,
            last_login,
            Staff.locked_until,
        )
        .outerjoin(Organisation, Organisation.id == Staff.organisation_id)
        .order_by(Staff.username)
    )
    role_stmt = select(StaffRole.staff_id, StaffRole.role).order_by(StaffRole.role)
    if staff_id is not None:
        stmt = stmt.where(Staff.id == staff_id)
        role_stmt = role_stmt.where(StaffRole.staff_id == staff_id)
    roles: dict[int, list[str]] = defaultdict(list)
    for sid, role in session.execute(role_stmt):
        roles[sid].append(role)
    return [
        StaffView(
            id=row[0],
            username=row[1],
            display_name=row[2],
            roles=roles[row[0]],
            organisation_id=row[3],
            organisation_name=row[4],
            active=row[5],
            created_at=row[6],
            last_login_at=row[7],
            locked_until=row[8],
        )
        for row in session.execute(stmt)
    ]


def staff_view(session: Session, staff_id: int) -> StaffView:
    views = _views(session, staff_id)
    if not views:
        raise StaffNotFound(f"staff {staff_id} not found", field="staff_id")
    return views[0]


def list_staff(session: Session, actor: Principal | None) -> list[StaffView]:
    """Every staff user by username, with their roles, organisation, status and last login."""
    _require_admin(actor)
    return _views(session)


# --- changes ------------------------------------------------------------------------------------


def create_staff(
    session: Session,
    actor: Principal | None,
    *,
    username: str,
    password: str,
    roles: Iterable[str],
    organisation_id: int | None = None,
    display_name: str | None = None,
    idempotency_key: str | None = None,
) -> Staff:
    """A new staff user. With `idempotency_key`, the same request again returns the user it created
    (a retry after a lost answer), and a different request under that key is refused."""
    # Roles may be empty here for callers that predate `no_roles`; the API and the console ask for one.
    _require_admin(actor)
    username = username.strip()
    if not _USERNAME.fullmatch(username):
        raise InvalidInput(
            "username: 2-64 letters, digits, '.', '_' or '-'",
            code="invalid_username",
            field="username",
        )
    _check_password(password, field="password")
    role_set = _check_roles(roles, allow_none=True)
    name = _check_display_name(display_name) if display_name else username
    check_idempotency_key(idempotency_key)
    # The password stays out of the stored hash; a replay proves it against the user's own hash.
    digest = fingerprint(
        {
            "username": username,
            "roles": sorted(role_set),
            "organisation_id": organisation_id,
            "display_name": name,
        }
    )
    if idempotency_key is not None:
        earlier = _created_with(session, idempotency_key)
        if earlier is not None:
            return _replayed(earlier, idempotency_key, digest, password)
    if organisation_id is not None:
        get_organisation(session, organisation_id)
    taken = Conflict(f"username {username!r} is taken", code="username_taken", field="username")
    if session.scalar(select(Staff.id).where(Staff.username == username)) is not None:
        raise taken
    staff = Staff(
        username=username,
        password_hash=_hasher().hash(password),
        display_name=name,
        organisation_id=organisation_id,
        idempotency_key=idempotency_key,
        request_hash=digest if idempotency_key is not None else None,
    )
    try:
        with session.begin_nested():  # a concurrent request may take the username or the key
            session.add(staff)
            session.flush()
    except IntegrityError:
        earlier = _created_with(session, idempotency_key) if idempotency_key else None
        if earlier is None:
            raise taken from None
        return _replayed(earlier, idempotency_key or "", digest, password)
    session.add_all(StaffRole(staff_id=staff.id, role=r) for r in role_set)
    session.flush()
    return staff


def _created_with(session: Session, idempotency_key: str) -> Staff | None:
    return session.scalars(select(Staff).where(Staff.idempotency_key == idempotency_key)).first()


def _replayed(earlier: Staff, idempotency_key: str, digest: str, password: str) -> Staff:
    if earlier.request_hash != digest:
        raise IdempotencyConflict(idempotency_key)
    try:
        _hasher().verify(earlier.password_hash, password)
    except (VerificationError, InvalidHashError):
        # Same fields, another password (or it was changed since): not the same request.
        raise IdempotencyConflict(idempotency_key) from None
    return earlier


def _keep_an_admin(session: Session, staff_id: int, *, field: str) -> None:
    """Refuse to take `staff_id` out of the active operator_admins if they are the last one.

    The active admins' staff AND role rows are locked, in id order so that two such changes never
    deadlock, before they are counted: a concurrent change waits here until the other commits, and
    PostgreSQL then re-checks the rows it waited for, so it counts what is true after that commit.
    An admin deactivated meanwhile no longer matches (their staff row changed); one demoted
    meanwhile is skipped only because their deleted role row is among the locked rows — locking
    the staff rows alone would count them from the statement's older snapshot.
    """
    stmt = (
        select(Staff.id)
        .join(StaffRole, StaffRole.staff_id == Staff.id)
        .where(StaffRole.role == ADMIN_ROLE, Staff.active.is_(True))
        .order_by(Staff.id)
    )
    admins = list(session.scalars(for_update(session, stmt)))
    if admins == [staff_id]:
        raise LastOperatorAdmin(
            "this is the last active operator_admin; make another one first", field=field
        )


def update_staff(
    session: Session,
    actor: Principal | None,
    staff_id: int,
    *,
    display_name: str | None = None,
    roles: Iterable[str] | None = None,
    active: bool | None = None,
) -> StaffView:
    """Rename, replace the roles of, deactivate or reactivate a staff user (None leaves a field).

    Deactivation revokes every live token of the user. An admin cannot deactivate themself, and the
    last active operator_admin can be neither deactivated nor stripped of the role.
    """
    _require_admin(actor)
    name = _check_display_name(display_name) if display_name is not None else None
    new_roles = _check_roles(roles) if roles is not None else None
    if active is False and actor is not None and actor.kind == "staff" and actor.id == staff_id:
        raise SelfDeactivation("you cannot deactivate your own account", field="active")
    if active is False:
        _keep_an_admin(session, staff_id, field="active")
    elif new_roles is not None and ADMIN_ROLE not in new_roles:
        _keep_an_admin(session, staff_id, field="roles")
    # Locked after the admins (never before): every change takes its locks in the same order.
    staff = get_staff(session, staff_id, lock=True)
    if name is not None:
        staff.display_name = name
    if new_roles is not None:
        current = set(session.scalars(select(StaffRole.role).where(StaffRole.staff_id == staff.id)))
        removed = current - set(new_roles)
        if removed:
            session.execute(
                delete(StaffRole).where(
                    StaffRole.staff_id == staff.id, StaffRole.role.in_(sorted(removed))
                )
            )
        session.add_all(StaffRole(staff_id=staff.id, role=r) for r in new_roles if r not in current)
    if active is not None:
        staff.active = active
    session.flush()
    if active is False:
        revoke_tokens_of(session, kind="staff", subject_id=staff.id)
    return staff_view(session, staff.id)


def reset_staff_password(
    session: Session, actor: Principal | None, staff_id: int, *, password: str
) -> None:
    """An admin sets a new password: the user's sessions end and any login lock is lifted."""
    _require_admin(actor)
    _check_password(password, field="password")
    staff = get_staff(session, staff_id, lock=True)
    staff.password_hash = _hasher().hash(password)
    staff.failed_logins, staff.locked_until = 0, None
    session.flush()
    revoke_tokens_of(session, kind="staff", subject_id=staff.id)


def change_own_password(
    session: Session,
    actor: Principal,
    *,
    current_password: str,
    new_password: str,
    keep_token: str | None = None,
) -> None:
    """A staff user changes their own password, proving the current one; their other sessions end
    (all but `keep_token`, the one making the change).

    A wrong current password counts as a failed login, so a stolen session cannot guess it faster
    than the login form could; the caller commits even when this raises WrongPassword.
    """
    if actor.kind != "staff":
        raise Forbidden("only staff may do this", code="staff_only")
    _check_password(new_password, field="new_password")
    staff = get_staff(session, actor.id, lock=True)
    check_not_locked(staff, field="current_password")
    try:
        _hasher().verify(staff.password_hash, current_password)
    except (VerificationError, InvalidHashError):
        count_wrong_password(session, staff)
        raise WrongPassword("the current password is wrong", field="current_password") from None
    staff.password_hash = _hasher().hash(new_password)
    staff.failed_logins, staff.locked_until = 0, None
    session.flush()
    revoke_tokens_of(session, kind="staff", subject_id=staff.id, keep=keep_token)
