"""Compiled methodologies and factor tables: pure objects, no database, no Pint when evaluating."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from tanhui.methodology.errors import FactorNotInForce, InvalidMethodologyInput

STATUSES = ("verified", "derived", "unverified")
KINDS = ("scenario", "project")
ROUNDINGS = {
    "half_even": ROUND_HALF_EVEN,
    "half_up": ROUND_HALF_UP,
    "down": ROUND_DOWN,
    "up": ROUND_UP,
}
ROUNDING_ZH = {
    "half_even": "四舍六入五成双",
    "half_up": "四舍五入",
    "down": "向零舍去",
    "up": "远离零进位",
}
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")

# Inputs beyond these magnitudes are not behaviour records; refusing them also keeps products far
# from the Decimal context's precision (28 digits), so results are exact before the one rounding.
_MAX_ADJUSTED = 12
_MIN_EXPONENT = -12

Env = dict[str, Any]
Fn = Callable[[Env], Any]


def worst_status(statuses: list[str]) -> str:
    return max(statuses, key=STATUSES.index) if statuses else "verified"


@dataclass(frozen=True, slots=True)
class Source:
    document: str
    address: str | None = None
    quote: str | None = None
    note: str | None = None  # English, or the only text given
    note_zh: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"document": self.document, "address": self.address}
        if self.quote:
            out["quote"] = self.quote
        if self.note:
            out["note"] = self.note
        if self.note_zh:
            out["note_zh"] = self.note_zh
        return out


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    unit: str
    integer: bool = False
    gt: Decimal | None = None
    ge: Decimal | None = None
    lt: Decimal | None = None
    le: Decimal | None = None
    description: str | None = None  # English, or the only text the author gave
    description_zh: str | None = None

    def describe_range(self) -> str:
        parts = []
        if self.gt is not None:
            parts.append(f"> {self.gt}")
        if self.ge is not None:
            parts.append(f">= {self.ge}")
        if self.lt is not None:
            parts.append(f"< {self.lt}")
        if self.le is not None:
            parts.append(f"<= {self.le}")
        return " and ".join(parts) or "any"

    def parse(self, raw: object) -> Decimal:
        """A record's raw value as a Decimal in the declared range, or raise invalid_quantity."""
        if isinstance(raw, Decimal):
            value = raw
        elif isinstance(raw, int) and not isinstance(raw, bool):
            value = Decimal(raw)
        elif isinstance(raw, str):
            try:
                value = Decimal(raw.strip())
            except InvalidOperation:
                raise self._bad(f"{self.name} must be a number, got {raw!r}") from None
        else:
            # floats are refused on purpose: 0.1 km must arrive as "0.1", never as a binary fraction
            raise self._bad(
                f"{self.name} must be a decimal string or an integer, got {type(raw).__name__}"
            )
        if not value.is_finite():
            raise self._bad(f"{self.name} must be a finite number")
        exponent = value.as_tuple().exponent
        if value and (
            value.adjusted() > _MAX_ADJUSTED
            or (isinstance(exponent, int) and exponent < _MIN_EXPONENT)
        ):
            raise self._bad(f"{self.name} is out of the supported magnitude or precision")
        if self.integer and value != value.to_integral_value():
            raise self._bad(f"{self.name} must be a whole number")
        if (
            (self.gt is not None and not value > self.gt)
            or (self.ge is not None and not value >= self.ge)
            or (self.lt is not None and not value < self.lt)
            or (self.le is not None and not value <= self.le)
        ):
            raise self._bad(f"{self.name} = {value} {self.unit} is outside {self.describe_range()}")
        return value

    def _bad(self, message: str) -> InvalidMethodologyInput:
        return InvalidMethodologyInput(message, field=self.name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "unit": self.unit,
            "type": "integer" if self.integer else "decimal",
        }
        for key in ("gt", "ge", "lt", "le"):
            bound = getattr(self, key)
            if bound is not None:
                out[key] = str(bound)
        if self.description:
            out["description"] = self.description
        if self.description_zh:
            out["description_zh"] = self.description_zh
        return out


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    value: Decimal
    unit: str
    status: str
    source: Source
    description: str | None = None
    description_zh: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": str(self.value),
            "unit": self.unit,
            "status": self.status,
            "source": self.source.to_dict(),
            "description": self.description,
            "description_zh": self.description_zh,
        }


@dataclass(frozen=True, slots=True)
class FactorRow:
    region: str
    value: Decimal
    valid_from: date
    valid_to: date | None
    status: str
    source: Source
    year: int | None = None

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)

    def to_dict(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "region": self.region,
            "value": str(self.value),
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "status": self.status,
            "source": self.source.to_dict(),
        }


@dataclass(slots=True)
class FactorTable:
    """A shared table of factors by region and validity period (e.g. grid factors by year).

    `parents` maps a region to the wider one whose factor applies when it has none of its own
    (shenzhen -> guangdong -> nanfang -> national), so a record's region always finds the most
    specific published row in force on its date.
    """

    id: str
    name_zh: str
    name_en: str
    unit: str
    rows: list[FactorRow]
    parents: dict[str, str] = field(default_factory=dict)
    file: str = ""
    _chains: dict[str, tuple[FactorRow, ...]] = field(default_factory=dict, repr=False)

    def chain(self, region: str) -> list[str]:
        out = [region]
        while out[-1] in self.parents and len(out) < 16:
            out.append(self.parents[out[-1]])
        if "national" not in out:
            out.append("national")
        return out

    def rows_for(self, region: str) -> tuple[FactorRow, ...]:
        rows = self._chains.get(region)
        if rows is None:
            ordered = [r for reg in self.chain(region) for r in self.rows if r.region == reg]
            rows = tuple(ordered)
            self._chains[region] = rows
        return rows

    def lookup(self, region: str, day: date) -> FactorRow | None:
        for row in self.rows_for(region):
            if row.in_force(day):
                return row
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": {"zh": self.name_zh, "en": self.name_en},
            "unit": self.unit,
            "parents": self.parents,
            "rows": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True, slots=True)
class FactorRef:
    """A methodology's use of a shared table: which table, and whose region picks the row."""

    alias: str
    table: FactorTable
    region: str | None  # None: the record's region (falling back to the methodology's own)
    description: str | None = None
    description_zh: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "table": self.table.id,
            "unit": self.table.unit,
            "region": self.region or "record",
            "statuses": sorted({r.status for r in self.table.rows}),
        }


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    expression: str
    fn: Fn
    refs: tuple[str, ...]
    message_zh: str | None
    message_en: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "rule": self.expression,
            "message": {"zh": self.message_zh, "en": self.message_en},
        }


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    expression: str
    unit: str
    fn: Fn
    refs: tuple[str, ...]
    description: str | None = None
    conversion: str | None = None  # a unit conversion the loader folded in, in English...
    description_zh: str | None = None
    conversion_zh: str | None = None  # ...and in Chinese

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expr": self.expression,
            "unit": self.unit,
            "description": self.description,
            "description_zh": self.description_zh,
        }


@dataclass(slots=True)
class TraceStep:
    """One line of a calculation's explanation: what was computed, from which values and unit."""

    step: str
    expression: str
    result: str
    unit: str
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str | None = None  # English
    note_zh: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step,
            "expression": self.expression,
            "result": self.result,
            "unit": self.unit,
            "values": self.values,
        }
        if self.note:
            out["note"] = self.note
        if self.note_zh:
            out["note_zh"] = self.note_zh
        return out


@dataclass(slots=True)
class Calculation:
    methodology: str
    version: str
    reduction_mg: int
    eligible: bool
    reasons: list[str]
    trace: list[TraceStep] | None = None
    per_day_cap_mg: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "methodology": self.methodology,
            "version": self.version,
            "reduction_mg": self.reduction_mg,
            "eligible": self.eligible,
            "reasons": list(self.reasons),
            "trace": [t.to_dict() for t in self.trace] if self.trace is not None else None,
        }


def _s(value: Decimal) -> str:
    """Plain notation for traces: 467000.0, never 4.670E+5."""
    return format(value, "f")


def _day(at: date | datetime, zone: ZoneInfo) -> date:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("calculation time must be timezone-aware")
        return at.astimezone(zone).date()
    return at


@dataclass(slots=True)
class CompiledMethodology:
    id: str
    version: str
    scenario: str
    kind: str
    region: str
    name_zh: str
    name_en: str
    issuer_zh: str
    issuer_en: str
    document_title: str
    document_address: str | None
    effective_from: date
    effective_to: date | None
    inputs: dict[str, InputSpec]
    parameters: dict[str, Parameter]
    factors: dict[str, FactorRef]
    rules: list[Rule]
    steps: list[Step]
    output: str
    output_unit: str
    to_mg: Decimal
    rounding: str
    allow_negative: bool
    per_record_cap_mg: int | None
    per_day_cap_mg: int | None
    status: str
    notes: str | None = None  # English, or the only text given
    notes_zh: str | None = None
    source_text: str = ""
    sha256: str = ""
    origin: str = ""
    zone: ZoneInfo = DEFAULT_ZONE
    _base: Env = field(default_factory=dict, repr=False)
    _input_items: tuple[tuple[str, InputSpec], ...] = field(default=(), repr=False)
    _step_fns: tuple[tuple[str, Fn], ...] = field(default=(), repr=False)
    _rule_fns: tuple[tuple[str, Fn], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        self._base = {name: p.value for name, p in self.parameters.items()}
        self._input_items = tuple(self.inputs.items())
        self._step_fns = tuple((s.name, s.fn) for s in self.steps)
        self._rule_fns = tuple((r.code, r.fn) for r in self.rules)

    @property
    def key(self) -> tuple[str, str]:
        return (self.id, self.version)

    def calculate(
        self,
        inputs: Mapping[str, object],
        *,
        at: date | datetime,
        region: str | None = None,
        trace: bool = False,
    ) -> Calculation:
        """The reduction for one record; pure: same inputs, date and region, same result."""
        env = self._base.copy()
        for name, spec in self._input_items:
            raw = inputs.get(name)
            if raw is None:
                raise InvalidMethodologyInput(f"{name} is required ({spec.unit})", field=name)
            env[name] = spec.parse(raw)
        rows: dict[str, FactorRow] = {}
        if self.factors:
            day = _day(at, self.zone)
            for alias, ref in self.factors.items():
                where = ref.region or region or self.region
                row = ref.table.lookup(where, day)
                if row is None:
                    raise FactorNotInForce(
                        f"no {ref.table.id} factor in force for {where} on {day.isoformat()}",
                        field=alias,
                    )
                env[alias] = row.value
                rows[alias] = row
        reasons = [code for code, fn in self._rule_fns if not fn(env)]
        eligible = not reasons
        if not eligible and not trace:
            return Calculation(self.id, self.version, 0, False, reasons, None, self.per_day_cap_mg)
        try:
            for name, fn in self._step_fns:
                env[name] = fn(env)
            exact = env[self.output] * self.to_mg
        except (
            ArithmeticError
        ):  # Decimal overflow from an extreme uploaded formula: refuse, never 500
            raise InvalidMethodologyInput(
                "the formula overflows for these inputs",
                field=self.output,
                code="calculation_overflow",
            ) from None
        mg = int(exact.to_integral_value(rounding=ROUNDINGS[self.rounding]))
        floored = capped = False
        if mg < 0 and not self.allow_negative:
            mg, floored = 0, True
        if self.per_record_cap_mg is not None and mg > self.per_record_cap_mg:
            mg, capped = self.per_record_cap_mg, True
        if not eligible:
            mg = 0
        steps = (
            self._trace(env, rows, exact, mg, floored, capped, reasons, region) if trace else None
        )
        return Calculation(self.id, self.version, mg, eligible, reasons, steps, self.per_day_cap_mg)

    # ------------------------------------------------------------ explanation

    def _value(self, name: str, env: Env, rows: dict[str, FactorRow]) -> dict[str, Any]:
        if name in self.inputs:
            return {"kind": "input", "value": _s(env[name]), "unit": self.inputs[name].unit}
        if name in self.parameters:
            p = self.parameters[name]
            return {
                "kind": "parameter",
                "value": _s(p.value),
                "unit": p.unit,
                "status": p.status,
                "source": p.source.to_dict(),
            }
        if name in self.factors:
            ref, row = self.factors[name], rows[name]
            return {
                "kind": "factor",
                "value": _s(row.value),
                "unit": ref.table.unit,
                "table": ref.table.id,
                "region": row.region,
                "year": row.year,
                "valid_from": row.valid_from.isoformat(),
                "status": row.status,
                "source": row.source.to_dict(),
            }
        step = next(s for s in self.steps if s.name == name)
        return {"kind": "step", "value": _s(env[name]), "unit": step.unit}

    def _trace(
        self,
        env: Env,
        rows: dict[str, FactorRow],
        exact: Decimal,
        mg: int,
        floored: bool,
        capped: bool,
        reasons: list[str],
        region: str | None,
    ) -> list[TraceStep]:
        out: list[TraceStep] = []
        for rule in self.rules:
            ok = rule.code not in reasons
            out.append(
                TraceStep(
                    step=f"eligibility:{rule.code}",
                    expression=rule.expression,
                    result="pass" if ok else "fail",
                    unit="",
                    values={n: self._value(n, env, rows) for n in rule.refs},
                    note=None if ok else (rule.message_en or rule.message_zh),
                    note_zh=None if ok else (rule.message_zh or rule.message_en),
                )
            )
        for s in self.steps:
            out.append(
                TraceStep(
                    step=s.name,
                    expression=s.expression,
                    result=_s(env[s.name]),
                    unit=s.unit,
                    values={n: self._value(n, env, rows) for n in s.refs},
                    note="; ".join(n for n in (s.description, s.conversion) if n) or None,
                    note_zh="；".join(
                        n for n in (s.description_zh or s.description, s.conversion_zh) if n
                    )
                    or None,
                )
            )
        out.append(
            TraceStep(
                step="to_mg",
                expression=f"{self.output} * {_s(self.to_mg)}",
                result=_s(exact),
                unit="mg CO2e",
                values={
                    self.output: {
                        "kind": "step",
                        "value": _s(env[self.output]),
                        "unit": self.output_unit,
                    }
                },
                note=f"converted from {self.output_unit} to mg CO2e",
                note_zh=f"由 {self.output_unit} 换算为 mg CO2e",
            )
        )
        note = f"rounded once to whole mg, {self.rounding.replace('_', '-')}"
        note_zh = f"只取整一次，舍入到整毫克（{ROUNDING_ZH[self.rounding]}）"
        if floored:
            note += "; negative result floored at 0 (negative reductions are not allowed)"
            note_zh += "；结果为负，按 0 计（减排量不能为负）"
        if capped:
            note += f"; per-record cap of {self.per_record_cap_mg} mg applied"
            note_zh += f"；已按单条记录上限 {self.per_record_cap_mg} mg 封顶"
        if reasons:
            note += f"; not eligible ({', '.join(reasons)}), so 0 is credited"
            note_zh += f"；不符合条件（{'、'.join(reasons)}），计 0"
        out.append(
            TraceStep(
                step="reduction_mg",
                expression=f"round({self.output} in mg, {self.rounding})",
                result=str(mg),
                unit="mg CO2e",
                note=note,
                note_zh=note_zh,
            )
        )
        return out

    # ------------------------------------------------------------ description

    def summary(self) -> dict[str, Any]:
        """The listing form: one object per methodology version."""
        return {
            "id": self.id,
            "version": self.version,
            "scenario": self.scenario,
            "region": self.region,
            "kind": self.kind,
            "name": {"zh": self.name_zh, "en": self.name_en},
            "status": self.status,
            "inputs": {name: spec.to_dict() for name, spec in self.inputs.items()},
            "effective_from": self.effective_from.isoformat(),
            "effective_to": self.effective_to.isoformat() if self.effective_to else None,
            "origin": self.origin,
        }

    def describe(self) -> dict[str, Any]:
        """Everything a citizen, verifier or buyer needs to see how a gram is computed."""
        out = self.summary()
        out.update(
            {
                "issuer": {"zh": self.issuer_zh, "en": self.issuer_en},
                "document": {"title": self.document_title, "address": self.document_address},
                "parameters": {n: p.to_dict() for n, p in self.parameters.items()},
                "factors": {a: f.to_dict() for a, f in self.factors.items()},
                "eligibility": [r.to_dict() for r in self.rules],
                "steps": [s.to_dict() for s in self.steps],
                "output": self.output,
                "rounding": self.rounding,
                "allow_negative": self.allow_negative,
                "caps": {
                    "per_record_mg": self.per_record_cap_mg,
                    "per_day_mg": self.per_day_cap_mg,
                },
                "notes": self.notes,
                "notes_zh": self.notes_zh,
                "sha256": self.sha256,
            }
        )
        return out
