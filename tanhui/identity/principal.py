"""Who is acting: the value every part receives from the identity dependencies (no FastAPI here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

ROLES = frozenset(
    {
        "operator_admin",
        "reviewer",
        "merchant",
        "verifier",
        "project_owner",
        "buyer",
        "enterprise_admin",
    }
)
ORGANISATION_KINDS = frozenset(
    {"platform", "partner", "merchant", "project_owner", "verifier", "buyer", "enterprise"}
)

PrincipalKind = Literal["citizen", "staff", "partner"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A logged-in citizen or staff member, or a partner's signed request (see PartnerPrincipal)."""

    kind: PrincipalKind
    id: int
    roles: frozenset[str] = frozenset()
    organisation_id: int | None = None
    display_name: str = ""

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


@dataclass(frozen=True, slots=True)
class PartnerPrincipal:
    """A verified, signed partner request: what the partner may send, and with which key."""

    partner_id: int
    organisation_id: int
    key_id: str
    name: str
    scenarios: frozenset[str]
    approved_until: date | None

    def as_principal(self) -> Principal:
        return Principal(
            kind="partner",
            id=self.partner_id,
            organisation_id=self.organisation_id,
            display_name=self.name,
        )
