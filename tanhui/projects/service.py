"""Project use cases: register, move through validation and registration, file monitoring reports,
verify, approve and issue. Flush, never commit.

Who may do what is decided here (not only in the routes) so the API, the CLI and the demo agree:
the *owner* is staff of the project's owner organisation with the project_owner role, the *verifier* is
staff of the verifier organisation the operator assigned, the *operator* has operator_admin.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tanhui.identity.principal import Principal as Actor
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import for_update
from tanhui.kit.errors import Conflict, Forbidden, IdempotencyConflict, InvalidInput, NotFound
from tanhui.kit.fingerprint import fingerprint
from tanhui.kit.settings import get_settings
from tanhui.projects.models import Document, Project, Reading, Report, Transition
from tanhui.registry import service as registry_service
from tanhui.registry.service import TONNE_MG

PROJECT_TYPES = ("rooftop_pv", "bus_fleet", "forestry", "ev_charging", "other")
PROJECT_STATUSES = ("draft", "submitted", "validated", "registered", "rejected")
REPORT_STATUSES = ("submitted", "verified", "issued", "rejected")

OWNER, VERIFIER, OPERATOR = "owner", "verifier", "operator"

# action -> (statuses it may start from, status it leads to, capacities allowed to take it).
PROJECT_TRANSITIONS: dict[str, tuple[frozenset[str], str | None, frozenset[str]]] = {
    "submit": (frozenset({"draft"}), "submitted", frozenset({OWNER})),
    "assign_verifier": (frozenset({"submitted"}), None, frozenset({OPERATOR})),
    "validate": (frozenset({"submitted"}), "validated", frozenset({VERIFIER})),
    "register": (frozenset({"validated"}), "registered", frozenset({OPERATOR})),
    "reject": (
        frozenset({"draft", "submitted", "validated"}),
        "rejected",
        frozenset({OPERATOR, VERIFIER}),
    ),
}
"""None as the target keeps the status (assigning a verifier is recorded but moves nothing)."""

REPORT_TRANSITIONS: dict[str, tuple[frozenset[str], str, frozenset[str]]] = {
    "verify": (frozenset({"submitted"}), "verified", frozenset({VERIFIER})),
    "approve": (frozenset({"verified"}), "issued", frozenset({OPERATOR})),
    "reject": (frozenset({"submitted", "verified"}), "rejected", frozenset({OPERATOR, VERIFIER})),
}

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
DOCUMENT_TYPES = {
    "application/pdf": (".pdf", b"%PDF-"),
    "image/png": (".png", b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": (".jpg", b"\xff\xd8\xff"),
    "text/csv": (".csv", None),
    "text/plain": (".txt", None),
}
"""Accepted uploads and their leading bytes (a file is refused when its bytes contradict its type)."""
MAX_CSV_LINES = 100_000
DEFAULT_ENERGY_INPUT = "generation_kwh"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class ProjectNotFound(NotFound):
    code = "project_not_found"


class ReportNotFound(NotFound):
    code = "report_not_found"


class NotAllowed(Forbidden):
    code = "not_allowed"


class PeriodOverlap(Conflict):
    code = "period_overlap"


class InvalidCsv(InvalidInput):
    code = "invalid_csv"


# --- who is who ------------------------------------------------------------------------------------


def capacities(actor: Actor, project: Project) -> set[str]:
    """What the actor is to this project: owner, verifier, operator (possibly several)."""
    out = set()
    if "operator_admin" in actor.roles:
        out.add(OPERATOR)
    if actor.kind == "staff" and actor.organisation_id is not None:
        if "project_owner" in actor.roles and actor.organisation_id == project.owner_org_id:
            out.add(OWNER)
        if "verifier" in actor.roles and actor.organisation_id == project.verifier_org_id:
            out.add(VERIFIER)
    return out


def _capacity(actor: Actor, project: Project, allowed: frozenset[str], action: str) -> str:
    mine = capacities(actor, project) & allowed
    if not mine:
        raise NotAllowed(
            f"{action} needs the project's {' or '.join(sorted(allowed))}",
            extra={"action": action},
        )
    # Record the capacity the rules name first (operator over verifier) so the history is unambiguous.
    return sorted(mine, key=[OPERATOR, VERIFIER, OWNER].index)[0]


def _record(
    session: Session,
    actor: Actor,
    *,
    subject: str,
    subject_id: int,
    project_id: int,
    action: str,
    from_status: str,
    to_status: str,
    role: str,
    reason: str | None = None,
) -> None:
    session.add(
        Transition(
            subject=subject,
            subject_id=subject_id,
            project_id=project_id,
            action=action,
            from_status=from_status,
            to_status=to_status,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_org_id=actor.organisation_id,
            actor_role=role,
            reason=reason,
            at=utcnow(),
        )
    )


# --- projects --------------------------------------------------------------------------------------


def get_project(session: Session, project_id: int, *, lock: bool = False) -> Project:
    stmt = select(Project).where(Project.id == project_id)
    if lock:
        stmt = for_update(session, stmt)
    project = session.scalars(stmt).one_or_none()
    if project is None:
        raise ProjectNotFound(f"project {project_id} does not exist", field="project_id")
    return project


def _check_methodology(session: Session, methodology_id: str, version: str) -> None:
    from tanhui.methodology import service as methodology_service

    try:
        methodology_service.get(session, methodology_id, version=version)
    except NotFound as exc:
        raise InvalidInput(
            f"unknown methodology {methodology_id}@{version}",
            code="unknown_methodology",
            field="methodology_id",
        ) from exc


def _check_fields(values: Mapping[str, Any]) -> None:
    if values.get("project_type") not in PROJECT_TYPES:
        raise InvalidInput(
            f"project_type must be one of {', '.join(PROJECT_TYPES)}", field="project_type"
        )
    start, end = values.get("crediting_start"), values.get("crediting_end")
    if isinstance(start, date) and isinstance(end, date) and end < start:
        raise InvalidInput("the crediting period ends before it starts", field="crediting_end")
    for name in ("capacity_w", "area_m2"):
        value = values.get(name)
        if value is not None and (type(value) is not int or value <= 0):
            raise InvalidInput(f"{name} is a positive integer", field=name)


def create_project(
    session: Session,
    actor: Actor,
    *,
    name: str,
    project_type: str,
    methodology_id: str,
    methodology_version: str,
    location: str,
    district: str,
    crediting_start: date,
    crediting_end: date,
    capacity_w: int | None = None,
    area_m2: int | None = None,
    description: str = "",
) -> Project:
    """A draft project of the actor's organisation (actor: project_owner staff)."""
    if "project_owner" not in actor.roles or actor.organisation_id is None:
        raise NotAllowed("only staff of a project owner organisation register projects")
    values = {
        "project_type": project_type,
        "crediting_start": crediting_start,
        "crediting_end": crediting_end,
        "capacity_w": capacity_w,
        "area_m2": area_m2,
    }
    _check_fields(values)
    _check_methodology(session, methodology_id, methodology_version)
    now = utcnow()
    project = Project(
        owner_org_id=actor.organisation_id,
        name=name,
        project_type=project_type,
        methodology_id=methodology_id,
        methodology_version=methodology_version,
        location=location,
        district=district,
        crediting_start=crediting_start,
        crediting_end=crediting_end,
        capacity_w=capacity_w,
        area_m2=area_m2,
        description=description,
        status="draft",
        carry_mg=0,
        created_by=actor.id,
        created_at=now,
        updated_at=now,
    )
    session.add(project)
    session.flush()
    _record(
        session,
        actor,
        subject="project",
        subject_id=project.id,
        project_id=project.id,
        action="create",
        from_status="",
        to_status="draft",
        role=OWNER,
    )
    session.flush()
    return project


_EDITABLE = (
    "name",
    "project_type",
    "methodology_id",
    "methodology_version",
    "location",
    "district",
    "crediting_start",
    "crediting_end",
    "capacity_w",
    "area_m2",
    "description",
)


def update_project(session: Session, actor: Actor, project_id: int, **changes: Any) -> Project:
    """Edit a draft (owner only); submitted projects are frozen for the verifier."""
    project = get_project(session, project_id, lock=True)
    _capacity(actor, project, frozenset({OWNER}), "editing")
    if project.status != "draft":
        raise InvalidTransition(f"project {project.id} is {project.status}; only drafts are edited")
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    merged = {k: changes.get(k, getattr(project, k)) for k in _EDITABLE}
    _check_fields(merged)
    if "methodology_id" in changes or "methodology_version" in changes:
        _check_methodology(session, merged["methodology_id"], merged["methodology_version"])
    for key, value in changes.items():
        setattr(project, key, value)
    project.updated_at = utcnow()
    session.flush()
    return project


def transition(
    session: Session,
    actor: Actor,
    project_id: int,
    action: str,
    *,
    reason: str | None = None,
    verifier_org_id: int | None = None,
) -> Project:
    """Take one of PROJECT_TRANSITIONS: 403 when the actor may not, 409 when the status does not allow it."""
    if action not in PROJECT_TRANSITIONS:
        raise InvalidInput(f"unknown action {action}", field="action")
    sources, target, allowed = PROJECT_TRANSITIONS[action]
    project = get_project(session, project_id, lock=True)
    role = _capacity(actor, project, allowed, action)
    if project.status not in sources or (
        # a verifier may only reject what it is reviewing, not a validated project awaiting the operator
        action == "reject" and role == VERIFIER and project.status != "submitted"
    ):
        raise InvalidTransition(
            f"cannot {action} a {project.status} project",
            extra={"current_status": project.status, "action": action},
        )
    if action == "reject":
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInput("a rejection gives its reason", field="reason")
        project.rejection_reason = reason[:500]
    if action == "assign_verifier":
        if verifier_org_id is None:
            raise InvalidInput("name the verifier organisation", field="verifier_org_id")
        _check_verifier_org(session, verifier_org_id)
        project.verifier_org_id = verifier_org_id
        reason = f"verifier organisation {verifier_org_id}"
    before = project.status
    if target is not None:
        project.status = target
    project.updated_at = utcnow()
    _record(
        session,
        actor,
        subject="project",
        subject_id=project.id,
        project_id=project.id,
        action=action,
        from_status=before,
        to_status=project.status,
        role=role,
        reason=reason,
    )
    session.flush()
    return project


def _check_verifier_org(session: Session, organisation_id: int) -> None:
    from tanhui.identity import service as identity_service

    getter = getattr(identity_service, "get_organisation", None)
    if getter is None:
        return
    try:
        org = getter(session, organisation_id)
    except NotFound as exc:
        raise InvalidInput(
            f"organisation {organisation_id} does not exist", field="verifier_org_id"
        ) from exc
    if getattr(org, "kind", "verifier") != "verifier":
        raise InvalidInput(
            f"organisation {organisation_id} is not a verifier", field="verifier_org_id"
        )


def submit(session: Session, actor: Actor, project_id: int) -> Project:
    return transition(session, actor, project_id, "submit")


def assign_verifier(
    session: Session, actor: Actor, project_id: int, *, verifier_org_id: int
) -> Project:
    return transition(
        session, actor, project_id, "assign_verifier", verifier_org_id=verifier_org_id
    )


def validate(session: Session, actor: Actor, project_id: int) -> Project:
    return transition(session, actor, project_id, "validate")


def register(session: Session, actor: Actor, project_id: int) -> Project:
    return transition(session, actor, project_id, "register")


def reject(session: Session, actor: Actor, project_id: int, *, reason: str) -> Project:
    return transition(session, actor, project_id, "reject", reason=reason)


def history(session: Session, project_id: int) -> list[Transition]:
    """Every move of the project and its reports, oldest first."""
    return list(
        session.scalars(
            select(Transition).where(Transition.project_id == project_id).order_by(Transition.id)
        ).all()
    )


def list_projects(
    session: Session,
    *,
    status: str | None = None,
    owner_org_id: int | None = None,
    verifier_org_id: int | None = None,
    project_type: str | None = None,
    district: str | None = None,
    q: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Project]:
    stmt = select(Project)
    if status is not None:
        stmt = stmt.where(Project.status == status)
    if owner_org_id is not None:
        stmt = stmt.where(Project.owner_org_id == owner_org_id)
    if verifier_org_id is not None:
        stmt = stmt.where(Project.verifier_org_id == verifier_org_id)
    if project_type is not None:
        stmt = stmt.where(Project.project_type == project_type)
    if district:
        stmt = stmt.where(Project.district.contains(district, autoescape=True))
    if q:
        stmt = stmt.where(Project.name.contains(q, autoescape=True))
    return list(session.scalars(stmt.order_by(Project.id).limit(limit).offset(offset)).all())


def visible_projects(session: Session, actor: Actor, **filters: Any) -> list[Project]:
    """Projects an actor may see in full: the operator all, an owner its own, a verifier its assigned."""
    if "operator_admin" in actor.roles:
        return list_projects(session, **filters)
    if actor.organisation_id is None:
        return []
    if "project_owner" in actor.roles:
        return list_projects(session, owner_org_id=actor.organisation_id, **filters)
    if "verifier" in actor.roles:
        return list_projects(session, verifier_org_id=actor.organisation_id, **filters)
    return []


def may_see(actor: Actor | None, project: Project) -> bool:
    """Registered projects are public; the rest only to their owner, verifier and the operator."""
    if project.status == "registered":
        return True
    return actor is not None and bool(capacities(actor, project))


# --- documents -------------------------------------------------------------------------------------


def uploads_dir() -> Path:
    return get_settings().data_dir / "uploads"


_SAFE_NAME = re.compile(r"[^\w.\-()\[\] 一-鿿]+")


def add_document(
    session: Session,
    actor: Actor,
    project_id: int,
    *,
    filename: str,
    content_type: str,
    data: bytes,
) -> Document:
    """Store an uploaded file (content-addressed by SHA-256) and record it against the project.

    The file is written before the transaction commits; being content-addressed, a rolled-back upload
    leaves at most an unreferenced copy of the same bytes, never a wrong file under a recorded name.
    """
    project = get_project(session, project_id)
    _capacity(actor, project, frozenset({OWNER}), "uploading documents")
    if project.status == "rejected":
        raise InvalidTransition(
            "the project was rejected", extra={"current_status": project.status}
        )
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type not in DOCUMENT_TYPES:
        raise InvalidInput(
            f"file type {content_type or 'unknown'} is not accepted ({', '.join(DOCUMENT_TYPES)})",
            code="unsupported_file_type",
            field="file",
        )
    if not data:
        raise InvalidInput("the file is empty", code="empty_file", field="file")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            f"the file is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB",
            code="file_too_large",
            field="file",
        )
    extension, magic = DOCUMENT_TYPES[content_type]
    if magic is not None and not data.startswith(magic):
        raise InvalidInput(
            f"the file's bytes are not {content_type}", code="unsupported_file_type", field="file"
        )
    if magic is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                "text files must be UTF-8", code="unsupported_file_type", field="file"
            ) from exc
    digest = hashlib.sha256(data).hexdigest()
    relative = Path("projects") / str(project.id) / f"{digest}{extension}"
    target = uploads_dir() / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    name = _SAFE_NAME.sub("_", Path(filename or "document").name)[:200] or "document"
    document = Document(
        project_id=project.id,
        filename=name,
        content_type=content_type,
        size=len(data),
        sha256=digest,
        path=str(relative),
        uploaded_by=actor.id,
        uploaded_at=utcnow(),
    )
    session.add(document)
    session.flush()
    return document


def documents(session: Session, project_id: int) -> list[Document]:
    return list(
        session.scalars(
            select(Document).where(Document.project_id == project_id).order_by(Document.id)
        ).all()
    )


def document_path(document: Document) -> Path:
    return uploads_dir() / document.path


# --- meter readings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedReading:
    line: int
    day: date
    meter_id: str
    wh: int


def parse_readings(data: bytes, *, start: date, end: date) -> list[ParsedReading]:
    """Parse `date,meter_id,kwh` lines; every bad line is reported with its number (1 = header).

    kWh may have up to three decimals (stored exactly as Wh); a (meter, day) appears at most once.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidCsv("the CSV must be UTF-8", field="file") from exc
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise InvalidCsv("the CSV is empty", field="file")
    header = [h.strip().lower() for h in rows[0]]
    if header != ["date", "meter_id", "kwh"]:
        raise InvalidCsv(
            "the first line must be the header date,meter_id,kwh",
            field="file",
            extra={"errors": [{"line": 1, "message": "expected header date,meter_id,kwh"}]},
        )
    if len(rows) - 1 > MAX_CSV_LINES:
        raise InvalidCsv(f"at most {MAX_CSV_LINES} readings per upload", field="file")
    errors: list[dict[str, Any]] = []
    out: list[ParsedReading] = []
    seen: dict[tuple[str, date], int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 3:
            errors.append({"line": number, "message": f"expected 3 columns, found {len(row)}"})
            continue
        raw_day, meter, raw_kwh = (c.strip() for c in row)
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            errors.append({"line": number, "field": "date", "message": f"not a date: {raw_day!r}"})
            continue
        if not start <= day <= end:
            errors.append(
                {"line": number, "field": "date", "message": f"{day} is outside {start}..{end}"}
            )
            continue
        if not meter or len(meter) > 64:
            errors.append(
                {"line": number, "field": "meter_id", "message": "meter_id is 1-64 chars"}
            )
            continue
        try:
            kwh = Decimal(raw_kwh)
        except InvalidOperation:
            errors.append({"line": number, "field": "kwh", "message": f"not a number: {raw_kwh!r}"})
            continue
        if not kwh.is_finite() or kwh < 0 or kwh > Decimal("1000000000"):
            errors.append({"line": number, "field": "kwh", "message": "kwh must be 0..10^9"})
            continue
        wh = kwh * 1000
        if wh != wh.to_integral_value():
            errors.append(
                {"line": number, "field": "kwh", "message": "at most three decimals (1 Wh)"}
            )
            continue
        if (meter, day) in seen:
            errors.append(
                {
                    "line": number,
                    "message": f"meter {meter} on {day} already read on line {seen[(meter, day)]}",
                }
            )
            continue
        seen[(meter, day)] = number
        out.append(ParsedReading(number, day, meter, int(wh)))
    if errors:
        first = errors[0]
        raise InvalidCsv(
            f"{len(errors)} bad line(s); first: line {first['line']}: {first['message']}",
            field="file",
            extra={"errors": errors[:200]},
        )
    if not out:
        raise InvalidCsv("the CSV has no readings", field="file")
    return out


def _energy_input(session: Session, project: Project) -> str:
    """The methodology input that takes the metered energy: the one whose unit is kWh."""
    from tanhui.methodology import service as methodology_service

    methodology = methodology_service.get(
        session, project.methodology_id, version=project.methodology_version
    )
    for name, spec in getattr(methodology, "inputs", {}).items():
        if str(getattr(spec, "unit", "")).lower() in ("kwh", "kw*h", "kw·h"):
            return str(name)
    return DEFAULT_ENERGY_INPUT


def _wh_to_kwh(wh: int) -> str:
    return format(Decimal(wh) / 1000, "f")


# --- monitoring reports ----------------------------------------------------------------------------


def _calculate(session: Session, project: Project, inputs: Mapping[str, Any], at: date) -> Any:
    from tanhui.methodology import service as methodology_service

    return methodology_service.calculate(
        session,
        project.methodology_id,
        version=project.methodology_version,
        inputs=dict(inputs),
        at=at,
        trace=True,
    )


def _clean_inputs(inputs: Mapping[str, Any]) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for key, value in inputs.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidInput(
                f"{key} must be a decimal string or an integer", field=f"inputs.{key}"
            )
        out[str(key)] = value
    return out


def get_report(session: Session, report_id: int, *, lock: bool = False) -> Report:
    stmt = select(Report).where(Report.id == report_id)
    if lock:
        stmt = for_update(session, stmt)
    report = session.scalars(stmt).one_or_none()
    if report is None:
        raise ReportNotFound(f"report {report_id} does not exist", field="report_id")
    return report


def file_report(
    session: Session,
    actor: Actor,
    project_id: int,
    *,
    period_start: date,
    period_end: date,
    inputs: Mapping[str, Any] | None = None,
    readings_csv: bytes | None = None,
    idempotency_key: str | None = None,
) -> Report:
    """The owner files a monitoring report; the methodology computes its reduction with a trace.

    With `readings_csv` (date,meter_id,kwh) the readings are stored and their total becomes the
    methodology's kWh input. The period lies in the crediting period and overlaps no live report.
    """
    inputs = _clean_inputs(inputs or {})
    request = {
        "project": project_id,
        "start": period_start.isoformat(),
        "end": period_end.isoformat(),
        "inputs": inputs,
        "csv": hashlib.sha256(readings_csv).hexdigest() if readings_csv is not None else None,
    }
    digest = fingerprint(request)
    key = f"report:{actor.kind}:{actor.id}:{idempotency_key}" if idempotency_key else None
    if key is not None:
        existing = session.scalars(
            select(Report).where(Report.idempotency_key == key)
        ).one_or_none()
        if existing is not None:
            if existing.request_hash != digest:
                raise IdempotencyConflict(idempotency_key or "")
            return existing
    project = get_project(session, project_id, lock=True)
    _capacity(actor, project, frozenset({OWNER}), "filing a monitoring report")
    if project.status != "registered":
        raise InvalidTransition(
            f"reports are filed for registered projects; project {project.id} is {project.status}",
            extra={"current_status": project.status},
        )
    if period_end < period_start:
        raise InvalidInput("the period ends before it starts", field="period_end")
    if period_start < project.crediting_start or period_end > project.crediting_end:
        raise InvalidInput(
            f"the period must lie in the crediting period "
            f"{project.crediting_start}..{project.crediting_end}",
            code="outside_crediting_period",
            field="period_start",
        )
    overlap = session.scalar(
        select(Report.id).where(
            Report.project_id == project.id,
            Report.status != "rejected",
            Report.period_start <= period_end,
            Report.period_end >= period_start,
        )
    )
    if overlap is not None:
        raise PeriodOverlap(
            f"report {overlap} already covers part of {period_start}..{period_end}",
            field="period_start",
            extra={"report_id": overlap},
        )
    readings: list[ParsedReading] = []
    if readings_csv is not None:
        readings = parse_readings(readings_csv, start=period_start, end=period_end)
        inputs[_energy_input(session, project)] = _wh_to_kwh(sum(r.wh for r in readings))
    # What the project already declares (its capacity) need not be typed again in every report.
    if "capacity_kw" not in inputs and project.capacity_w is not None:
        inputs["capacity_kw"] = format(Decimal(project.capacity_w) / 1000, "f")
    calculation = _calculate(session, project, inputs, period_end)
    report = Report(
        project_id=project.id,
        period_start=period_start,
        period_end=period_end,
        status="submitted",
        methodology_id=project.methodology_id,
        methodology_version=project.methodology_version,
        inputs=inputs,
        reduction_mg=int(calculation.reduction_mg),
        trace=calculation.to_dict(),
        idempotency_key=key,
        request_hash=digest,
        created_by=actor.id,
        created_at=utcnow(),
    )
    session.add(report)
    session.flush()
    for r in readings:
        session.add(
            Reading(report_id=report.id, line=r.line, day=r.day, meter_id=r.meter_id, wh=r.wh)
        )
    _record(
        session,
        actor,
        subject="report",
        subject_id=report.id,
        project_id=project.id,
        action="file",
        from_status="",
        to_status="submitted",
        role=OWNER,
    )
    session.flush()
    return report


def _report_move(
    session: Session, actor: Actor, report_id: int, action: str
) -> tuple[Report, Project, str]:
    sources, _, allowed = REPORT_TRANSITIONS[action]
    report = get_report(session, report_id)
    project = get_project(session, report.project_id, lock=True)
    report = get_report(session, report_id, lock=True)
    role = _capacity(actor, project, allowed, f"{action} a report")
    if report.status not in sources or (
        action == "reject" and role == VERIFIER and report.status != "submitted"
    ):
        raise InvalidTransition(
            f"cannot {action} a {report.status} report",
            extra={"current_status": report.status, "action": action},
        )
    return report, project, role


def _finish(
    session: Session,
    actor: Actor,
    report: Report,
    action: str,
    role: str,
    reason: str | None = None,
) -> None:
    before = report.status
    report.status = REPORT_TRANSITIONS[action][1]
    _record(
        session,
        actor,
        subject="report",
        subject_id=report.id,
        project_id=report.project_id,
        action=action,
        from_status=before,
        to_status=report.status,
        role=role,
        reason=reason,
    )
    session.flush()


def verify_report(
    session: Session,
    actor: Actor,
    report_id: int,
    *,
    corrected_inputs: Mapping[str, Any] | None = None,
    comment: str | None = None,
) -> Report:
    """The assigned verifier confirms the report, or corrects figures with a comment (the original
    inputs and reduction stay beside the corrected ones)."""
    report, project, role = _report_move(session, actor, report_id, "verify")
    comment = (comment or "").strip() or None
    if corrected_inputs:
        if comment is None:
            raise InvalidInput("a correction says why (comment)", field="comment")
        merged = {**report.inputs, **_clean_inputs(corrected_inputs)}
        calculation = _calculate(session, project, merged, report.period_end)
        report.corrected_inputs = merged
        report.corrected_reduction_mg = int(calculation.reduction_mg)
        report.corrected_trace = calculation.to_dict()
    report.verification_comment = comment
    _finish(session, actor, report, "verify", role, comment)
    return report


def final_reduction_mg(report: Report) -> int:
    """What a report stands for: the verifier's corrected figure when there is one."""
    if report.corrected_reduction_mg is not None:
        return report.corrected_reduction_mg
    return report.reduction_mg


def approve_report(session: Session, actor: Actor, report_id: int) -> Report:
    """The operator approves a verified report and issues its whole tonnes to the owner.

    The project row is locked, so the carried fraction and the batch sequence are read and written by
    one approval at a time. Approving an issued report again answers with the report (idempotent).
    """
    current = get_report(session, report_id)
    if current.status == "issued":
        project = get_project(session, current.project_id)
        _capacity(actor, project, frozenset({OPERATOR}), "approve a report")
        return current
    report, project, role = _report_move(session, actor, report_id, "approve")
    carried_in = project.carry_mg
    reduction = final_reduction_mg(report)
    credits, carried_out = divmod(carried_in + max(reduction, 0), TONNE_MG)
    report.carried_in_mg = carried_in
    report.issued_credits = credits
    report.carried_out_mg = carried_out
    if credits:
        owner_account = registry_service.account_for_organisation(session, project.owner_org_id)
        batch = registry_service.issue(
            session,
            actor,
            account_id=owner_account.id,
            quantity=credits,
            vintage=report.period_end.year,
            project_number=project.id,
            source_kind="project_report",
            source_ref=str(report.id),
            idempotency_key=f"project-report:{report.id}",
            methodology_id=report.methodology_id,
            methodology_version=report.methodology_version,
            reduction_mg=credits * TONNE_MG,
        )
        report.batch_id = batch.id
    project.carry_mg = carried_out
    project.updated_at = utcnow()
    _finish(session, actor, report, "approve", role, f"issued {credits} credits")
    return report


def reject_report(session: Session, actor: Actor, report_id: int, *, reason: str) -> Report:
    report, _, role = _report_move(session, actor, report_id, "reject")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a rejection gives its reason", field="reason")
    report.rejection_reason = reason[:500]
    _finish(session, actor, report, "reject", role, reason[:500])
    return report


def reports(session: Session, project_id: int) -> list[Report]:
    return list(
        session.scalars(
            select(Report).where(Report.project_id == project_id).order_by(Report.period_start)
        ).all()
    )


def readings(session: Session, report_id: int) -> list[Reading]:
    return list(
        session.scalars(
            select(Reading).where(Reading.report_id == report_id).order_by(Reading.line)
        )
    )


def counts_by_status(session: Session) -> dict[str, int]:
    out = dict.fromkeys(PROJECT_STATUSES, 0)
    for status, n in session.execute(select(Project.status, func.count()).group_by(Project.status)):
        out[status] = int(n)
    return out


def local_day(at: datetime) -> date:
    return at.astimezone(get_settings().zone).date()
