"""PIPL rights: a citizen exports all their data (art. 45) and erases their personal data (art. 47).

Other parts add their own sections and erasure steps to the two explicit lists below, from
tanhui/wiring.py (identity imports no part above it). Identity registers only its own section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tanhui.identity.models import OneTimeCode
from tanhui.identity.principal import Principal
from tanhui.identity.service.accounts import (
    CitizenErased,
    access_log,
    get_citizen,
    log_access,
    revoke_tokens_of,
)
from tanhui.identity.service.bindings import BindingView, citizen_bindings, revoke_all_bindings
from tanhui.kit.db import utcnow

ExportSection = Callable[[Session, int], tuple[str, Any]]

EXPORT_SECTIONS: list[ExportSection] = []
"""(session, citizen_id) -> (section name, JSON-serialisable data), one per part holding citizen data."""

ERASE_HOOKS: list[Callable[[Session, int], None]] = []
"""(session, citizen_id) -> None: a part erases what it holds in clear (e.g. a shipping address).
Value history (ledger, activity records) stays, keyed by the citizen id only."""


def _binding_dict(b: BindingView) -> dict[str, Any]:
    return {
        "id": b.id,
        "partner_id": b.partner_id,
        "partner_name": b.partner_name,
        "partner_user_id": b.partner_user_id,
        "scenarios": b.scenarios,
        "status": b.status,
        "bound_at": b.bound_at.isoformat(),
        "revoked_at": b.revoked_at.isoformat() if b.revoked_at else None,
    }


def identity_section(session: Session, citizen_id: int) -> tuple[str, Any]:
    citizen = get_citizen(session, citizen_id)
    return "identity", {
        "profile": {
            "id": citizen.id,
            "nickname": citizen.nickname,
            "district": citizen.district,
            "created_at": citizen.created_at.isoformat(),
            "phone": "stored only as a keyed hash (HMAC-SHA256); not recoverable",
        },
        "bindings": [_binding_dict(b) for b in citizen_bindings(session, citizen_id)],
        "access_log": [
            {
                "actor_kind": e.actor_kind,
                "actor_id": e.actor_id,
                "actor_name": e.actor_name,
                "what": e.what,
                "why": e.why,
                "at": e.at.isoformat(),
            }
            for e in access_log(session, citizen_id, limit=100_000)
        ],
    }


def export_citizen(session: Session, citizen_id: int) -> dict[str, Any]:
    """Everything the platform holds about the citizen: identity first, then each part's section."""
    result: dict[str, Any] = {}
    for section in [identity_section, *EXPORT_SECTIONS]:
        name, data = section(session, citizen_id)
        result[name] = data
    return result


def erase_citizen(session: Session, citizen_id: int) -> None:
    """Anonymise: clear phone hash, nickname and district, revoke bindings and sessions.

    The row and its id stay: ledger entries and activity records refer to the id and must still
    balance and explain themselves (碳账户 history), but nothing links the id to a person any more.
    """
    citizen = get_citizen(session, citizen_id)
    if citizen.erased_at is not None:
        raise CitizenErased("this account was already erased")
    if citizen.phone_hash is not None:
        session.execute(
            delete(OneTimeCode)
            .where(OneTimeCode.phone_hash == citizen.phone_hash)
            .execution_options(synchronize_session=False)
        )
    citizen.phone_hash = None
    citizen.nickname = None
    citizen.district = None
    citizen.erased_at = utcnow()
    revoke_all_bindings(session, citizen_id)
    revoke_tokens_of(session, kind="citizen", subject_id=citizen_id)
    for hook in ERASE_HOOKS:
        hook(session, citizen_id)
    session.flush()


def read_citizen_as_staff(
    session: Session, actor: Principal, citizen_id: int, *, why: str
) -> dict[str, Any]:
    """A staff member looks a citizen up: the read is logged where the citizen can see it."""
    citizen = get_citizen(session, citizen_id)
    log_access(session, citizen_id=citizen_id, actor=actor, what="profile and bindings", why=why)
    return {
        "id": citizen.id,
        "nickname": citizen.nickname,
        "district": citizen.district,
        "created_at": citizen.created_at,
        "erased": citizen.erased_at is not None,
        "bindings": citizen_bindings(session, citizen_id),
    }
