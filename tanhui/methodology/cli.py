"""`tanhui methodology ...`: list, show, check, calc, diff, upload, assign."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.exc import OperationalError, ProgrammingError

from tanhui.kit.db import session_scope, utcnow
from tanhui.kit.errors import InvalidInput
from tanhui.methodology import service as methodology_service
from tanhui.methodology.errors import MethodologyInvalid
from tanhui.methodology.loader import load_factor_tables, load_methodology

app = typer.Typer(help="Methodologies (方法学) and emission factors.", no_args_is_help=True)


def _print(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _catalogue() -> methodology_service.Catalogue:
    """The full catalogue from the database; the shipped one alone when no database is set up
    yet, so `list`, `show` and `calc` work on a fresh checkout."""
    from tanhui.kit.settings import get_settings

    try:
        with session_scope() as session:
            return methodology_service.catalogue(session)
    except (OperationalError, ProgrammingError):
        typer.secho("note: no database; showing shipped methodologies only", err=True, fg="yellow")
    zone = get_settings().zone
    tables, shipped = methodology_service.shipped_catalogue(zone)
    return methodology_service.Catalogue(tables, {m.key: m for m in shipped}, zone)


def _split(ref: str) -> tuple[str, str | None]:
    mid, _, version = ref.partition("@")
    return mid, version or None


@app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per methodology version."),
    scenario: str | None = typer.Option(None, help="Only this scenario."),
) -> None:
    """Every methodology version: id, version, scenario, region, kind, status, inputs, dates."""
    cat = _catalogue()
    items = [m.summary() for m in cat.all() if scenario in (None, m.scenario)]
    if as_json:
        _print(items)
        return
    for item in items:
        typer.echo(
            f"{item['id']}@{item['version']:<4} {item['scenario']:<24} {item['region']:<10} "
            f"{item['status']:<10} from {item['effective_from']}  {item['name']['zh']}"
        )


@app.command("show")
def show(
    ref: str = typer.Argument(help="ID or ID@VERSION"),
    version: str | None = typer.Option(None, "--version", help="Version (default: newest)."),
) -> None:
    """Everything about one version: sources, parameters with status, factor tables, formula."""
    mid, at_version = _split(ref)
    cat = _catalogue()
    _print(cat.get(mid, version or at_version).describe())


@app.command("check")
def check(
    file: Path = typer.Argument(help="A methodology TOML file"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Validate a methodology file (units, names, totality); exit 1 listing every error."""
    text = file.read_text(encoding="utf-8")
    try:
        m = load_methodology(text, file=str(file), tables=load_factor_tables())
    except MethodologyInvalid as exc:
        if as_json:
            _print({"ok": False, "errors": [e.to_dict() for e in exc.errors]})
        else:
            for err in exc.errors:
                typer.secho(str(err), err=True, fg="red")
        raise typer.Exit(1) from None
    if as_json:
        _print({"ok": True, "methodology": m.summary()})
    else:
        typer.echo(f"ok: {m.id}@{m.version} ({m.scenario}, {m.region}, {m.status})")


def _parse_at(value: str | None) -> date | datetime:
    if value is None:
        return utcnow()
    try:
        if "T" in value or " " in value:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError
            return parsed
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--at must be a date (2025-06-01) or an aware time (2025-06-01T08:00+08:00), got {value!r}",
            field="at",
        ) from None


@app.command("calc")
def calc(
    ref: str = typer.Argument(help="ID or ID@VERSION"),
    version: str | None = typer.Option(
        None, "--version", help="Version (default: in force at --at)."
    ),
    at: str | None = typer.Option(None, "--at", help="Date or aware time of the behaviour."),
    inputs: list[str] = typer.Option([], "--input", "-i", help="name=value, repeatable."),
    region: str | None = typer.Option(None, "--region", help="The record's region."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Compute a reduction with its trace."""
    mid, at_version = _split(ref)
    values: dict[str, str] = {}
    for item in inputs:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--input must be name=value, got {item!r}", field="input")
        values[name.strip()] = value.strip()
    when = _parse_at(at)
    cat = _catalogue()
    m = cat.get(mid, version or at_version, at=when)
    result = m.calculate(values, at=when, region=region, trace=True)
    out = result.to_dict()
    if as_json:
        _print(out)
        return
    for step in out["trace"] or []:
        typer.echo(f"{step['step']:<28} {step['expression']:<48} = {step['result']} {step['unit']}")
    verdict = "eligible" if result.eligible else f"not eligible: {', '.join(result.reasons)}"
    typer.echo(f"{result.methodology}@{result.version}: {result.reduction_mg} mg CO2e ({verdict})")


@app.command("diff")
def diff(
    a: str = typer.Argument(help="ID@VERSION"),
    b: str = typer.Argument(help="ID@VERSION, or VERSION of the same ID"),
) -> None:
    """What changed between two versions (factors, formula, dates, sources)."""
    a_id, a_version = _split(a)
    b_id, b_version = _split(b) if "@" in b else (a_id, b)
    cat = _catalogue()
    left = cat.get(a_id, a_version)
    right = cat.get(b_id, b_version)
    _print(
        {
            "a": f"{left.id}@{left.version}",
            "b": f"{right.id}@{right.version}",
            "changes": methodology_service.diff(left, right),
        }
    )


@app.command("upload")
def upload(file: Path = typer.Argument(help="A methodology TOML file")) -> None:
    """Store a new methodology version in the database (validated first)."""
    text = file.read_text(encoding="utf-8")
    try:
        with session_scope() as session:
            row = methodology_service.upload(session, None, toml_text=text)
            typer.echo(
                f"uploaded {row.methodology_id}@{row.version}, effective {row.effective_from}"
            )
    except MethodologyInvalid as exc:
        for err in exc.errors:
            typer.secho(str(err), err=True, fg="red")
        raise typer.Exit(1) from None


@app.command("assign")
def assign(
    scenario: str = typer.Argument(help="Scenario, e.g. metro"),
    methodology_id: str = typer.Argument(help="Methodology id, e.g. wuhan-metro"),
    effective_from: str = typer.Option(..., "--from", help="First day it applies (YYYY-MM-DD)."),
) -> None:
    """Apply a methodology to a scenario from a date on."""
    try:
        day = date.fromisoformat(effective_from)
    except ValueError:
        raise InvalidInput("--from must be a date like 2025-01-01", field="from") from None
    with session_scope() as session:
        methodology_service.assign(
            session, None, scenario=scenario, methodology_id=methodology_id, effective_from=day
        )
    typer.echo(f"{scenario} -> {methodology_id} from {day}")


@app.command("assignments")
def assignments(as_json: bool = typer.Option(False, "--json")) -> None:
    """Scenario assignments in force and scheduled."""
    with session_scope() as session:
        rows = [
            {
                "scenario": a.scenario,
                "methodology_id": a.methodology_id,
                "effective_from": a.effective_from.isoformat(),
            }
            for a in methodology_service.assignments(session)
        ]
    if as_json:
        _print(rows)
    else:
        for r in rows:
            typer.echo(f"{r['scenario']:<24} {r['methodology_id']:<32} from {r['effective_from']}")
