"""Methodology use cases: the catalogue (shipped + uploaded), resolution, calculation, upload, assignment.

Other parts code against: `catalogue`, `get`, `resolve`, `calculate`, `upload`, `assign`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from tanhui.identity.principal import Principal
from tanhui.kit.errors import InvalidInput
from tanhui.kit.settings import get_settings
from tanhui.methodology.engine import Calculation, CompiledMethodology, FactorTable
from tanhui.methodology.errors import (
    LoadError,
    MethodologyInvalid,
    MethodologyNotFound,
    MethodologyVersionExists,
)
from tanhui.methodology.loader import (
    SCENARIOS,
    load_catalogue,
    load_factor_tables,
    load_methodology,
)
from tanhui.methodology.models import MethodologyAssignment, MethodologyVersion

MAX_UPLOAD_BYTES = 256 * 1024

__all__ = [
    "Calculation",
    "Catalogue",
    "CompiledMethodology",
    "MethodologyAssignment",
    "MethodologyVersion",
    "assign",
    "assignments",
    "calculate",
    "catalogue",
    "get",
    "resolve",
    "upload",
]


def _day(at: date | datetime, zone: ZoneInfo) -> date:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise InvalidInput("time must include a time zone", field="at")
        return at.astimezone(zone).date()
    return at


@dataclass
class Catalogue:
    """Every methodology version known to the platform, compiled; immutable once built."""

    tables: dict[str, FactorTable]
    versions: dict[tuple[str, str], CompiledMethodology]
    zone: ZoneInfo
    by_id: dict[str, list[CompiledMethodology]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m in self.versions.values():
            self.by_id.setdefault(m.id, []).append(m)
        for versions in self.by_id.values():
            versions.sort(key=lambda m: (m.effective_from, m.version))

    def all(self) -> list[CompiledMethodology]:
        return [m for mid in sorted(self.by_id) for m in self.by_id[mid]]

    def versions_of(self, methodology_id: str) -> list[CompiledMethodology]:
        versions = self.by_id.get(methodology_id)
        if not versions:
            raise MethodologyNotFound(f"no methodology {methodology_id!r}", field="methodology_id")
        return versions

    def get(
        self,
        methodology_id: str,
        version: str | None = None,
        *,
        at: date | datetime | None = None,
    ) -> CompiledMethodology:
        versions = self.versions_of(methodology_id)
        if version is not None:
            found = self.versions.get((methodology_id, str(version)))
            if found is None:
                raise MethodologyNotFound(
                    f"{methodology_id!r} has no version {version!r} "
                    f"(versions: {', '.join(m.version for m in versions)})",
                    field="version",
                )
            return found
        if at is None:
            return versions[-1]
        day = _day(at, self.zone)
        in_force = [m for m in versions if m.effective_from <= day]
        if not in_force:
            raise MethodologyNotFound(
                f"{methodology_id!r} has no version in force on {day.isoformat()} "
                f"(first effective {versions[0].effective_from.isoformat()})",
                code="methodology_not_in_force",
                field="at",
            )
        return in_force[-1]

    def default_for(self, scenario: str, region: str, day: date) -> CompiledMethodology:
        """Without an assignment: the variant for the platform's region, else national, else any."""
        candidates = [
            versions for versions in self.by_id.values() if versions[0].scenario == scenario
        ]
        in_force = [[m for m in vs if m.effective_from <= day] for vs in candidates]
        usable = sorted((vs for vs in in_force if vs), key=lambda vs: vs[0].id)
        if not usable:
            raise MethodologyNotFound(
                f"no methodology for scenario {scenario!r} in force on {day.isoformat()}",
                code="methodology_not_in_force",
                field="scenario",
            )
        for wanted in (region, "national"):
            for vs in usable:
                if vs[-1].region == wanted:
                    return vs[-1]
        return usable[0][-1]


# Shipped files are compiled once per process; uploads are re-read only when the set of uploaded rows
# changes. The fingerprint is every upload's (id, sha256): exact across processes and transactions
# (a rolled-back upload on SQLite may reuse its id, but never with the same content hash unnoticed).
_lock = threading.Lock()
_shipped: tuple[dict[str, FactorTable], list[CompiledMethodology]] | None = None
_built: OrderedDict[tuple[str, tuple[tuple[int, str], ...]], Catalogue] = OrderedDict()


def shipped_catalogue(zone: ZoneInfo) -> tuple[dict[str, FactorTable], list[CompiledMethodology]]:
    global _shipped
    if _shipped is None:
        tables = load_factor_tables()
        _shipped = (tables, load_catalogue(tables, zone=zone))
    return _shipped


def catalogue(session: Session) -> Catalogue:
    """The shipped methodologies plus every uploaded version, compiled (cached)."""
    zone = get_settings().zone
    rows = session.execute(
        select(MethodologyVersion.id, MethodologyVersion.sha256).order_by(MethodologyVersion.id)
    ).all()
    key = (str(zone), tuple((int(r.id), str(r.sha256)) for r in rows))
    with _lock:
        cached = _built.get(key)
        if cached is not None:
            _built.move_to_end(key)
            return cached
    tables, shipped = shipped_catalogue(zone)
    versions = {m.key: m for m in shipped}
    uploads = session.scalars(select(MethodologyVersion).order_by(MethodologyVersion.id)).all()
    for row in uploads:
        m = load_methodology(
            row.toml_text,
            file=f"upload:{row.methodology_id}@{row.version}",
            tables=tables,
            origin="upload",
            zone=zone,
        )
        versions[m.key] = m
    built = Catalogue(tables=tables, versions=versions, zone=zone)
    with _lock:
        _built[key] = built
        while len(_built) > 8:
            _built.popitem(last=False)
    return built


def get(
    session: Session,
    methodology_id: str,
    version: str | None = None,
    *,
    at: date | datetime | None = None,
) -> CompiledMethodology:
    """One version: the named one, else the newest in force at `at`, else the newest."""
    return catalogue(session).get(methodology_id, version, at=at)


def versions(session: Session, methodology_id: str) -> list[CompiledMethodology]:
    return list(catalogue(session).versions_of(methodology_id))


def resolve(session: Session, scenario: str, *, at: date | datetime) -> CompiledMethodology:
    """The methodology version the platform applies to `scenario` for a record made at `at`.

    The assignment in force at `at` names the methodology (else the default variant for the
    platform's region); its newest version whose effective_from is not after `at` computes.
    """
    return resolver(session)(scenario, at)


def resolver(session: Session) -> Callable[[str, date | datetime], CompiledMethodology]:
    """`resolve` for a batch of records: the catalogue and the assignments are read once.

    The assignments are a short table (a row per operator change of a scenario's methodology);
    the one in force at a record's day is the latest effective_from not after it (then the
    latest assigned).
    """
    cat = catalogue(session)
    region = get_settings().region
    assignments: dict[str, list[tuple[date, str]]] = {}
    for scenario, methodology_id, effective_from in session.execute(
        select(
            MethodologyAssignment.scenario,
            MethodologyAssignment.methodology_id,
            MethodologyAssignment.effective_from,
        ).order_by(MethodologyAssignment.effective_from.desc(), MethodologyAssignment.id.desc())
    ).all():
        assignments.setdefault(scenario, []).append((effective_from, methodology_id))

    def resolve_one(scenario: str, at: date | datetime) -> CompiledMethodology:
        if scenario not in SCENARIOS:
            raise InvalidInput(
                f"unknown scenario {scenario!r}", code="unknown_scenario", field="scenario"
            )
        day = _day(at, cat.zone)
        for effective_from, methodology_id in assignments.get(scenario, ()):
            if effective_from <= day:
                return cat.get(methodology_id, at=day)
        return cat.default_for(scenario, region, day)

    return resolve_one


def calculate(
    session: Session,
    methodology_id: str,
    *,
    inputs: Mapping[str, str | int | Decimal],
    at: date | datetime,
    version: str | None = None,
    region: str | None = None,
    trace: bool = False,
) -> Calculation:
    """Compute with a named methodology (the version in force at `at` unless one is named)."""
    m = get(session, methodology_id, version, at=at)
    return m.calculate(inputs, at=at, region=region, trace=trace)


def upload(session: Session, actor: Principal | None, *, toml_text: str) -> MethodologyVersion:
    """Validate and store an operator's methodology version; 422 with every error, 409 if it exists."""
    if len(toml_text.encode("utf-8")) > MAX_UPLOAD_BYTES:
        raise MethodologyInvalid(
            [LoadError("upload.toml", None, "", f"file larger than {MAX_UPLOAD_BYTES} bytes")]
        )
    cat = catalogue(session)
    m = load_methodology(
        toml_text, file="upload.toml", tables=cat.tables, origin="upload", zone=cat.zone
    )
    if m.key in cat.versions:
        raise MethodologyVersionExists(
            f"{m.id}@{m.version} already exists; upload it with a new version", field="version"
        )
    existing = cat.by_id.get(m.id)
    if existing and (existing[0].scenario, existing[0].kind) != (m.scenario, m.kind):
        raise MethodologyInvalid(
            [
                LoadError(
                    "upload.toml",
                    None,
                    "scenario",
                    f"{m.id} is a {existing[0].kind} methodology for {existing[0].scenario}; "
                    "a new version cannot change that (use a new id)",
                )
            ]
        )
    row = MethodologyVersion(
        methodology_id=m.id,
        version=m.version,
        scenario=m.scenario,
        region=m.region,
        toml_text=toml_text,
        sha256=m.sha256,
        uploaded_by=actor.id if actor is not None else None,
        effective_from=m.effective_from,
    )
    session.add(row)
    session.flush()
    return row


def assign(
    session: Session,
    actor: Principal | None,
    *,
    scenario: str,
    methodology_id: str,
    effective_from: date,
) -> MethodologyAssignment:
    """From `effective_from` on, apply `methodology_id` to `scenario` (earlier records keep theirs)."""
    if scenario not in SCENARIOS:
        raise InvalidInput(
            f"unknown scenario {scenario!r}", code="unknown_scenario", field="scenario"
        )
    versions_ = catalogue(session).versions_of(methodology_id)
    if versions_[0].scenario != scenario:
        raise InvalidInput(
            f"{methodology_id} is a methodology for {versions_[0].scenario}, not {scenario}",
            code="scenario_mismatch",
            field="methodology_id",
        )
    row = MethodologyAssignment(
        scenario=scenario,
        methodology_id=methodology_id,
        effective_from=effective_from,
        assigned_by=actor.id if actor is not None else None,
    )
    session.add(row)
    session.flush()
    return row


def assignments(session: Session, scenario: str | None = None) -> list[MethodologyAssignment]:
    query = select(MethodologyAssignment).order_by(
        MethodologyAssignment.scenario,
        MethodologyAssignment.effective_from,
        MethodologyAssignment.id,
    )
    if scenario is not None:
        query = query.where(MethodologyAssignment.scenario == scenario)
    return list(session.scalars(query).all())


def diff(a: CompiledMethodology, b: CompiledMethodology) -> list[dict[str, object]]:
    """What changed between two versions, field by field (for `tanhui methodology diff A B`)."""
    left, right = a.describe(), b.describe()
    out: list[dict[str, object]] = []

    def walk(x: object, y: object, path: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y), key=str):
                walk(x.get(k), y.get(k), f"{path}.{k}" if path else str(k))
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
                walk(xi, yi, f"{path}[{i}]")
        elif x != y:
            out.append({"field": path, "from": x, "to": y})

    for skip in ("sha256", "origin"):
        left.pop(skip, None)
        right.pop(skip, None)
    walk(left, right, "")
    return out
