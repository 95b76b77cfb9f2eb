"""Consent (用户授权): a citizen binds a partner account for named scenarios, changes or revokes it.

The flow is OAuth2's authorisation-code grant (RFC 6749 §4.1) without client passwords: the partner's
signed request is its client authentication. The binding becomes active only at the code exchange.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, Text, bindparam, cast, select, update
from sqlalchemy.orm import Session

from tanhui.identity.models import AuthorisationCode, Binding, Partner
from tanhui.identity.principal import PartnerPrincipal, Principal
from tanhui.identity.service.accounts import (
    CitizenErased,
    citizen_for_phone,
    get_citizen,
    log_access,
    normalise_phone,
)
from tanhui.identity.service.partners import (
    _SCENARIO,
    check_partner_active,
    get_partner,
    validate_scenarios,
)
from tanhui.kit.bulk import fetch_all
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import in_list, postgres
from tanhui.kit.errors import Conflict, Forbidden, InvalidInput, NotFound, TanhuiError

# A partner's id for its user, as partner records carry it (activity.checks reads the same rule):
# printable ASCII without spaces, so that a binding made here can receive records.
PARTNER_USER_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
# A partner id in a file: a plain decimal that fits a 64-bit column ("١٢".isdigit() is true too).
_PARTNER_ID = re.compile(r"^[0-9]{1,18}$")

AUTH_CODE_TTL = timedelta(minutes=10)
_CHUNK = 500  # ids per IN (...) list: under SQLite's bound-parameter limit


class ScenarioNotApproved(InvalidInput):
    code = "scenario_not_approved"


class RedirectUriNotRegistered(InvalidInput):
    code = "redirect_uri_not_registered"


class InvalidGrant(TanhuiError):
    """RFC 6749 §5.2: the code is unknown, used, expired or not this partner's."""

    status_code = 400
    code = "invalid_grant"


class BindingNotFound(NotFound):
    code = "binding_not_found"


class PartnerUserBoundElsewhere(Conflict):
    code = "partner_user_bound_elsewhere"


class ImportRejected(InvalidInput):
    code = "import_rejected"


@dataclass(frozen=True, slots=True)
class BindingInfo:
    citizen_id: int
    scenarios: frozenset[str]


@dataclass(frozen=True, slots=True)
class BindingView:
    id: int
    partner_id: int
    partner_name: str
    partner_user_id: str
    scenarios: list[str]
    status: str
    bound_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuthorizationGrant:
    code: str
    redirect_url: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    field: str
    message: str


@dataclass
class ImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    citizens_created: int = 0
    errors: list[RowError] = field(default_factory=list)


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _consentable(partner: Partner, scenarios: Iterable[str]) -> list[str]:
    wanted = validate_scenarios(scenarios)
    extra = set(wanted) - set(partner.scenarios)
    if extra:
        raise ScenarioNotApproved(
            f"partner {partner.id} is not approved for: {', '.join(sorted(extra))}",
            field="scenarios",
        )
    return wanted


def _check_redirect(partner: Partner, redirect_uri: str) -> None:
    # Exact match (RFC 6749 §3.1.2.2 / OAuth 2.1): prefix matching has leaked codes to open redirects.
    if redirect_uri not in partner.redirect_uris:
        raise RedirectUriNotRegistered(
            "redirect_uri is not one of the partner's registered redirect URIs",
            field="redirect_uri",
        )


def authorize_preview(
    session: Session, *, partner_id: int, scenarios: Iterable[str], redirect_uri: str
) -> tuple[Partner, list[str]]:
    """Check an authorisation request before showing the consent page (no change)."""
    partner = get_partner(session, partner_id)
    check_partner_active(partner)
    _check_redirect(partner, redirect_uri)
    return partner, _consentable(partner, scenarios)


def authorize(
    session: Session,
    citizen: Principal,
    *,
    partner_id: int,
    partner_user_id: str,
    scenarios: Iterable[str],
    redirect_uri: str,
    state: str | None = None,
) -> AuthorizationGrant:
    """The citizen consented on our page: a one-time code for the partner to exchange."""
    if citizen.kind != "citizen":
        raise Forbidden("only citizens may authorise partners", code="citizen_only")
    partner, wanted = authorize_preview(
        session, partner_id=partner_id, scenarios=scenarios, redirect_uri=redirect_uri
    )
    partner_user_id = partner_user_id.strip()
    if not PARTNER_USER_ID.match(partner_user_id):
        raise InvalidInput(
            "partner_user_id: 1-128 printable ASCII characters, no spaces",
            code="invalid_partner_user_id",
            field="partner_user_id",
        )
    if get_citizen(session, citizen.id).erased_at is not None:
        raise CitizenErased("this account was erased")
    code = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        AuthorisationCode(
            code_hash=_code_hash(code),
            partner_id=partner.id,
            citizen_id=citizen.id,
            partner_user_id=partner_user_id,
            scenarios=wanted,
            redirect_uri=redirect_uri,
            created_at=now,
            expires_at=now + AUTH_CODE_TTL,
        )
    )
    session.flush()
    params = {"code": code} | ({"state": state} if state is not None else {})
    separator = "&" if "?" in redirect_uri else "?"
    return AuthorizationGrant(
        code=code,
        redirect_url=f"{redirect_uri}{separator}{urlencode(params)}",
        expires_in=int(AUTH_CODE_TTL.total_seconds()),
    )


def _bind(
    session: Session,
    *,
    partner_id: int,
    partner_user_id: str,
    citizen_id: int,
    scenarios: list[str],
) -> tuple[Binding, str]:
    """Create, reactivate or update the binding; returns it and "created"/"updated"/"unchanged"."""
    binding = session.scalar(
        select(Binding).where(
            Binding.partner_id == partner_id, Binding.partner_user_id == partner_user_id
        )
    )
    now = utcnow()
    if binding is None:
        binding = Binding(
            partner_id=partner_id,
            partner_user_id=partner_user_id,
            citizen_id=citizen_id,
            scenarios=scenarios,
            status="active",
            bound_at=now,
            updated_at=now,
        )
        session.add(binding)
        session.flush()
        return binding, "created"
    if binding.status == "active" and binding.citizen_id != citizen_id:
        raise PartnerUserBoundElsewhere(
            "this partner account is bound to another citizen, who must revoke it first",
            field="partner_user_id",
        )
    if binding.status == "active" and sorted(binding.scenarios) == scenarios:
        return binding, "unchanged"
    if binding.status != "active":
        binding.bound_at = now
    binding.citizen_id = citizen_id
    binding.scenarios = scenarios
    binding.status = "active"
    binding.revoked_at = None
    binding.updated_at = now
    session.flush()
    return binding, "updated"


def exchange_code(
    session: Session, partner: PartnerPrincipal, *, code: str, redirect_uri: str | None = None
) -> Binding:
    """The partner trades the code for the binding; the code works once, for this partner only."""
    row = session.scalar(
        select(AuthorisationCode).where(AuthorisationCode.code_hash == _code_hash(code))
    )
    now = utcnow()
    if (
        row is None
        or row.partner_id != partner.partner_id
        or row.used_at is not None
        or row.expires_at <= now
    ):
        raise InvalidGrant(
            "the authorisation code is invalid, expired or already used", field="code"
        )
    if redirect_uri is not None and redirect_uri != row.redirect_uri:
        raise InvalidGrant(
            "redirect_uri differs from the authorisation request", field="redirect_uri"
        )
    # Conditional update: two concurrent exchanges of one code, one wins.
    consumed = session.execute(
        update(AuthorisationCode)
        .where(AuthorisationCode.id == row.id, AuthorisationCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidGrant("the authorisation code was already used", field="code")
    if get_citizen(session, row.citizen_id).erased_at is not None:
        raise InvalidGrant("the citizen erased their account", field="code")
    # The partner's approval may have narrowed since the citizen consented.
    scenarios = sorted(set(row.scenarios) & partner.scenarios)
    if not scenarios:
        raise InvalidGrant("none of the consented scenarios is still approved", field="code")
    binding, _ = _bind(
        session,
        partner_id=row.partner_id,
        partner_user_id=row.partner_user_id,
        citizen_id=row.citizen_id,
        scenarios=scenarios,
    )
    row.binding_id = binding.id
    log_access(
        session,
        citizen_id=row.citizen_id,
        actor=partner.as_principal(),
        what="binding",
        why="partner exchanged the authorisation code you approved",
    )
    session.flush()
    return binding


def bindings_for(
    session: Session, partner_id: int, partner_user_ids: Collection[str]
) -> dict[str, BindingInfo]:
    """Active bindings of a partner's users: partner_user_id -> (citizen_id, consented scenarios).

    Users missing from the answer are unbound or revoked (`unbound_user`); a scenario missing from a
    binding's set was not consented (`scenario_not_consented`).
    """
    ids = list(dict.fromkeys(partner_user_ids))
    result: dict[str, BindingInfo] = {}
    # A partner's users mostly consent to the same few scenario lists: each list's JSON text is
    # parsed once per call, not once per row (Core columns, as a batch reads hundreds).
    consented: dict[str, frozenset[str]] = {}
    stmt = _bindings_stmt(postgres(session))
    for start in range(0, len(ids), _CHUNK):
        rows = fetch_all(
            session, stmt, {"partner_id": partner_id, "user_ids": ids[start : start + _CHUNK]}
        )
        for user_id, citizen_id, text in rows:
            scenarios = consented.get(text)
            if scenarios is None:
                scenarios = consented[text] = frozenset(json.loads(text))
            result[user_id] = BindingInfo(citizen_id, scenarios)
    return result


@lru_cache(maxsize=2)
def _bindings_stmt(on_postgres: bool) -> Select[Any]:
    table = Binding.__table__.c
    return select(table.partner_user_id, table.citizen_id, cast(table.scenarios, Text)).where(
        table.partner_id == bindparam("partner_id"),
        in_list(on_postgres, table.partner_user_id, "user_ids"),
        table.status == "active",
    )


def _view(binding: Binding, partner_name: str) -> BindingView:
    return BindingView(
        id=binding.id,
        partner_id=binding.partner_id,
        partner_name=partner_name,
        partner_user_id=binding.partner_user_id,
        scenarios=list(binding.scenarios),
        status=binding.status,
        bound_at=binding.bound_at,
        revoked_at=binding.revoked_at,
    )


def citizen_bindings(
    session: Session, citizen_id: int, *, include_revoked: bool = True
) -> list[BindingView]:
    stmt = (
        select(Binding, Partner.name)
        .join(Partner, Partner.id == Binding.partner_id)
        .where(Binding.citizen_id == citizen_id)
    )
    if not include_revoked:
        stmt = stmt.where(Binding.status == "active")
    return [_view(b, name) for b, name in session.execute(stmt.order_by(Binding.id))]


def _own_binding(session: Session, citizen_id: int, binding_id: int) -> Binding:
    binding = session.get(Binding, binding_id)
    if binding is None or binding.citizen_id != citizen_id:
        raise BindingNotFound(f"binding {binding_id} not found", field="binding_id")
    return binding


def revoke_binding(session: Session, citizen_id: int, binding_id: int) -> BindingView:
    """Withdraw consent: the partner's later records for this user are rejected (unbound_user)."""
    binding = _own_binding(session, citizen_id, binding_id)
    if binding.status == "active":
        binding.status = "revoked"
        binding.revoked_at = binding.updated_at = utcnow()
        session.flush()
    return _view(binding, get_partner(session, binding.partner_id).name)


def update_binding_scenarios(
    session: Session, citizen_id: int, binding_id: int, *, scenarios: Iterable[str]
) -> BindingView:
    binding = _own_binding(session, citizen_id, binding_id)
    if binding.status != "active":
        raise Conflict(
            "the binding was revoked; authorise the partner again", code="binding_revoked"
        )
    partner = get_partner(session, binding.partner_id)
    binding.scenarios = _consentable(partner, scenarios)
    binding.updated_at = utcnow()
    session.flush()
    return _view(binding, partner.name)


def revoke_all_bindings(session: Session, citizen_id: int) -> int:
    now = utcnow()
    result = session.execute(
        update(Binding)
        .where(Binding.citizen_id == citizen_id, Binding.status == "active")
        .values(status="revoked", revoked_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- bulk import ----------------------------------------------------------------------------------

IMPORT_COLUMNS = ("partner_id", "partner_user_id", "phone", "scenarios")


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    partner_id: int
    partner_user_id: str
    phone: str
    scenarios: list[str]


def _parse_rows(
    session: Session, rows: Iterable[tuple[int, Mapping[str, str | None]]]
) -> tuple[list[_Row], list[RowError]]:
    parsed: list[_Row] = []
    errors: list[RowError] = []
    partners: dict[int, Partner | None] = {}
    seen: dict[tuple[int, str], _Row] = {}
    for line, raw in rows:
        row_errors: list[RowError] = []
        values = {k: (raw.get(k) or "").strip() for k in IMPORT_COLUMNS}
        partner = None
        if not _PARTNER_ID.match(values["partner_id"]):
            row_errors.append(RowError(line, "partner_id", "must be a partner id (a number)"))
        else:
            pid = int(values["partner_id"])
            if pid not in partners:
                partners[pid] = session.get(Partner, pid)
            partner = partners[pid]
            if partner is None:
                row_errors.append(RowError(line, "partner_id", f"no partner {pid}"))
        if not PARTNER_USER_ID.match(values["partner_user_id"]):
            row_errors.append(
                RowError(line, "partner_user_id", "1-128 printable ASCII characters, no spaces")
            )
        phone = ""
        try:
            phone = normalise_phone(values["phone"])
        except InvalidInput:
            row_errors.append(RowError(line, "phone", "not an 11-digit mainland mobile number"))
        scenarios = sorted({s.strip() for s in values["scenarios"].split(";") if s.strip()})
        if not scenarios:
            row_errors.append(RowError(line, "scenarios", "at least one scenario (';'-separated)"))
        elif bad := [s for s in scenarios if not _SCENARIO.match(s)]:
            row_errors.append(RowError(line, "scenarios", f"invalid scenario {bad[0]!r}"))
        elif partner is not None and (extra := set(scenarios) - set(partner.scenarios)):
            row_errors.append(
                RowError(line, "scenarios", f"partner not approved for {', '.join(sorted(extra))}")
            )
        if row_errors:
            errors.extend(row_errors)
            continue
        assert partner is not None
        row = _Row(line, partner.id, values["partner_user_id"], phone, scenarios)
        key = (row.partner_id, row.partner_user_id)
        if key in seen:
            first = seen[key]
            if (first.phone, first.scenarios) != (row.phone, row.scenarios):
                errors.append(
                    RowError(
                        line,
                        "partner_user_id",
                        f"same partner user as line {first.line} with different data",
                    )
                )
            continue
        seen[key] = row
        parsed.append(row)
    return parsed, errors


def import_bindings(
    session: Session,
    actor: Principal | None,
    rows: Iterable[tuple[int, Mapping[str, str | None]]],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import bindings all or nothing: every row is checked first; any bad row → ImportRejected
    (listing each line and field) and nothing is written. Re-importing a file changes nothing."""
    if actor is not None and not actor.has_role("operator_admin"):
        raise Forbidden("only an operator_admin may import bindings", code="missing_role")
    materialised = list(rows)
    parsed, errors = _parse_rows(session, materialised)
    result = ImportResult(rows=len(materialised), errors=errors)
    if not errors:
        # Conflicts with existing bindings are row errors too, found before anything is written.
        for row in parsed:
            existing = bindings_for(session, row.partner_id, [row.partner_user_id])
            info = existing.get(row.partner_user_id)
            if info is None:
                continue
            try:
                bound_to = citizen_for_phone(session, row.phone, create=False).id
            except NotFound:
                bound_to = None
            if bound_to != info.citizen_id:
                errors.append(
                    RowError(row.line, "partner_user_id", "already bound to another citizen")
                )
    if errors:
        raise ImportRejected(
            f"{len(errors)} bad row(s); nothing was imported",
            field=f"line {errors[0].line}: {errors[0].field}",
            extra={"errors": [dataclasses.asdict(e) for e in errors]},
        )
    for row in parsed:
        known = _known(session, row.phone)
        citizen = citizen_for_phone(session, row.phone)
        if not known:
            result.citizens_created += 1
        _, outcome = _bind(
            session,
            partner_id=row.partner_id,
            partner_user_id=row.partner_user_id,
            citizen_id=citizen.id,
            scenarios=row.scenarios,
        )
        setattr(result, outcome, getattr(result, outcome) + 1)
        if on_progress is not None:
            on_progress(1)
    result.unchanged += len(materialised) - len(parsed)  # duplicate lines within the file
    return result


def _known(session: Session, phone: str) -> bool:
    try:
        citizen_for_phone(session, phone, create=False)
    except NotFound:
        return False
    return True
