"""Loading methodology and factor-table TOML files: validate everything up front, compile once.

Every problem is collected (not just the first) and reported with file, line and field path, so
an operator fixing an upload sees the whole list. tomllib keeps no positions, so lines come from a
light scan of the raw text for table headers and keys (`_Positions`); it is exact for the plain
layout the catalogue uses and falls back to the nearest enclosing table otherwise.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tanhui.methodology import expr
from tanhui.methodology.engine import (
    DEFAULT_ZONE,
    KINDS,
    ROUNDINGS,
    STATUSES,
    CompiledMethodology,
    FactorRef,
    FactorRow,
    FactorTable,
    InputSpec,
    Parameter,
    Rule,
    Source,
    Step,
    worst_status,
)
from tanhui.methodology.errors import LoadError, MethodologyInvalid
from tanhui.methodology.units import MG_CO2E, Unit, compatible, factor, parse_unit, show

PACKAGE_DIR = Path(__file__).parent
CATALOGUE_DIR = PACKAGE_DIR / "catalogue"
FACTORS_DIR = PACKAGE_DIR / "factors"

# The shared vocabulary fixed across parts: ingestion maps partner records onto these names.
SCENARIOS = (
    "bus",
    "metro",
    "bike_share",
    "walking",
    "carpool",
    "ev_trip",
    "ev_charging",
    "electricity_saving",
    "distributed_pv",
    "no_disposable_tableware",
    "second_hand_phone",
    "recycling",
    "shopping_bag",
    "digital_refuelling",
)
# Each input's name carries its unit, so the unit a methodology declares for it is fixed too.
INPUT_UNITS = {
    "distance_km": "km",
    "duration_min": "min",
    "steps": "dimensionless",
    "kwh": "kWh",
    "count": "dimensionless",
    "weight_kg": "kg",
    "capacity_kw": "kW",
    "passengers": "dimensionless",
}
INTEGER_INPUTS = {"steps", "count", "passengers"}

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.\-]{0,31}$")
_REGION = re.compile(r"^[a-z]+(?:_[a-z]+)*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(.+?)\s*$")

_METHODOLOGY_KEYS = {
    "id", "version", "scenario", "kind", "region", "effective_from", "effective_to", "status",
    "notes", "name", "issuer", "document", "inputs", "parameters", "factors", "eligibility", "caps",
    "steps", "result",
}  # fmt: skip


class _Positions:
    """Map dotted field paths ("inputs.distance_km.le", "steps[1].expr") to 1-based line numbers."""

    _ARRAY = re.compile(r"^\[\[\s*([^\]]+?)\s*\]\]")
    _TABLE = re.compile(r"^\[\s*([^\]]+?)\s*\]")
    _KEY = re.compile(r"^([A-Za-z0-9_\-\"'. ]+?)\s*=")
    _INLINE_KEY = re.compile(r"[{,]\s*([A-Za-z0-9_\-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        counters: dict[str, int] = {}
        header = ""
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            m = self._ARRAY.match(line)
            if m:
                name = self._norm(m.group(1))
                counters[name] = counters.get(name, 0) + 1
                header = f"{name}[{counters[name] - 1}]"
                self.lines.setdefault(header, number)
                continue
            m = self._TABLE.match(line)
            if m:
                header = self._norm(m.group(1))
                first = header.split(".")[0]
                if first in counters:  # [rows.source] belongs to the latest [[rows]]
                    header = f"{first}[{counters[first] - 1}]" + header[len(first) :]
                self.lines.setdefault(header, number)
                continue
            m = self._KEY.match(line)
            if m:
                key = self._norm(m.group(1))
                path = f"{header}.{key}" if header else key
                self.lines.setdefault(path, number)
                for inner in self._INLINE_KEY.finditer(line[m.end() :]):
                    self.lines.setdefault(f"{path}.{inner.group(1)}", number)

    @staticmethod
    def _norm(key: str) -> str:
        return ".".join(part.strip().strip("\"'") for part in key.split("."))

    def line(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                break
            path = path[:cut]
        return self.lines.get(path)


class _Reader:
    """Typed access to a parsed TOML document that records errors instead of raising."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.positions = _Positions(text)
        self.errors: list[LoadError] = []

    def error(self, path: str, message: str, line: int | None = None) -> None:
        self.errors.append(LoadError(self.file, line or self.positions.line(path), path, message))

    def unknown(self, data: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
        allowed = set(allowed)
        for key in data:
            if key not in allowed:
                where = f"{path}.{key}" if path else key
                self.error(where, f"unknown field {key!r} (allowed: {', '.join(sorted(allowed))})")

    def table(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool = True
    ) -> dict[str, Any]:
        value = data.get(key)
        where = f"{path}.{key}" if path else key
        if value is None:
            if required:
                self.error(where, "is required")
            return {}
        if not isinstance(value, dict):
            self.error(where, "must be a table")
            return {}
        return value

    def string(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool = True
    ) -> str | None:
        value = data.get(key)
        where = f"{path}.{key}" if path else key
        if value is None:
            if required:
                self.error(where, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(where, "must be a non-empty string")
            return None
        return value.strip()

    def text(self, data: Mapping[str, Any], key: str, path: str) -> tuple[str | None, str | None]:
        """An optional description: a string (shown in every language) or a table `{ zh = "...",
        en = "..." }`. Returns (the English or only text, the Chinese text)."""
        value = data.get(key)
        if not isinstance(value, dict):
            return self.string(data, key, path, required=False), None
        where = f"{path}.{key}" if path else key
        self.unknown(value, {"zh", "en"}, where)
        zh = self.string(value, "zh", where, required=False)
        en = self.string(value, "en", where, required=False)
        if zh is None and en is None:
            self.error(where, "give the text in zh, en or both")
        return en or zh, zh

    def decimal(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool = True
    ) -> Decimal | None:
        value = data.get(key)
        where = f"{path}.{key}" if path else key
        if value is None:
            if required:
                self.error(where, "is required")
            return None
        if isinstance(value, bool):
            self.error(where, "must be a number")
            return None
        try:
            result = Decimal(value) if isinstance(value, int | str) else value
        except (ArithmeticError, ValueError, TypeError):
            self.error(where, f"must be a number, got {value!r}")
            return None
        if not isinstance(result, Decimal) or not result.is_finite():
            self.error(where, f"must be a finite number, got {value!r}")
            return None
        exponent = result.as_tuple().exponent
        # Values far outside any emission factor would only risk Decimal overflow at evaluation.
        if result and (result.adjusted() > 15 or (isinstance(exponent, int) and exponent < -15)):
            self.error(where, "must be between 1e-15 and 1e15 in magnitude")
            return None
        return result

    def day(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool = True
    ) -> date | None:
        value = data.get(key)
        where = f"{path}.{key}" if path else key
        if value is None:
            if required:
                self.error(where, "is required")
            return None
        if isinstance(value, date) and not hasattr(value, "hour"):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.error(where, f"must be a date like 2024-01-01, got {value!r}")
        return None

    def unit(self, data: Mapping[str, Any], key: str, path: str) -> tuple[str, Unit] | None:
        text = self.string(data, key, path)
        if text is None:
            return None
        try:
            return text, parse_unit(text)
        except ValueError as exc:
            self.error(f"{path}.{key}", str(exc))
            return None

    def status(self, data: Mapping[str, Any], key: str, path: str) -> str:
        value = self.string(data, key, path)
        if value is None:
            return "unverified"
        if value not in STATUSES:
            self.error(f"{path}.{key}", f"must be one of {', '.join(STATUSES)}")
            return "unverified"
        return value

    def source(self, data: Mapping[str, Any], path: str) -> Source:
        raw = self.table(data, "source", path)
        where = f"{path}.source"
        self.unknown(raw, {"document", "address", "quote", "note"}, where)
        document = self.string(raw, "document", where) if raw else None
        address = self.string(raw, "address", where, required=False)
        if address is not None and not re.match(r"^(https?://|urn:|doi:)", address):
            self.error(f"{where}.address", "must be a URL (http:// or https://)")
        note, note_zh = self.text(raw, "note", where)
        return Source(
            document=document or "",
            address=address,
            quote=self.string(raw, "quote", where, required=False),
            note=note,
            note_zh=note_zh,
        )

    def fail_if_errors(self) -> None:
        if self.errors:
            raise MethodologyInvalid(self.errors)


def _parse_toml(file: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise MethodologyInvalid(
            [LoadError(file, int(m.group(1)) if m else None, "", f"not valid TOML: {exc}")]
        ) from None


# ---------------------------------------------------------------- factor tables


def load_factor_table(text: str, *, file: str) -> FactorTable:
    data = _parse_toml(file, text)
    r = _Reader(file, text)
    r.unknown(data, {"id", "name", "unit", "parents", "rows", "description"}, "")
    table_id = r.string(data, "id", "") or ""
    if table_id and not re.match(r"^[a-z][a-z0-9_]*$", table_id):
        r.error("id", "must be lowercase letters, digits and underscores")
    name = r.table(data, "name", "")
    unit = r.unit(data, "unit", "")
    parents_raw = r.table(data, "parents", "", required=False)
    parents: dict[str, str] = {}
    for child, parent in parents_raw.items():
        if not isinstance(parent, str) or not _REGION.match(parent) or not _REGION.match(child):
            r.error(f"parents.{child}", 'regions are lowercase pinyin, e.g. shenzhen = "guangdong"')
        else:
            parents[child] = parent
    rows: list[FactorRow] = []
    raw_rows = data.get("rows")
    if not isinstance(raw_rows, list) or not raw_rows:
        r.error("rows", "at least one [[rows]] entry is required")
        raw_rows = []
    for i, row in enumerate(raw_rows):
        path = f"rows[{i}]"
        if not isinstance(row, dict):
            r.error(path, "must be a table")
            continue
        r.unknown(
            row,
            {"year", "region", "value", "valid_from", "valid_to", "status", "source", "unit"},
            path,
        )
        region = r.string(row, "region", path) or ""
        if region and not _REGION.match(region):
            r.error(
                f"{path}.region", "must be lowercase pinyin such as shenzhen, hubei or national"
            )
        value = r.decimal(row, "value", path)
        valid_from = r.day(row, "valid_from", path)
        valid_to = r.day(row, "valid_to", path, required=False)
        year = row.get("year")
        if year is not None and (not isinstance(year, int) or isinstance(year, bool)):
            r.error(f"{path}.year", "must be an integer year")
            year = None
        if "unit" in row and unit is not None and row["unit"] != unit[0]:
            r.error(f"{path}.unit", f"every row must be in the table's unit {unit[0]!r}")
        if valid_from and valid_to and valid_to <= valid_from:
            r.error(f"{path}.valid_to", "must be after valid_from")
        status = r.status(row, "status", path)
        source = r.source(row, path)
        if value is not None and value < 0:
            r.error(f"{path}.value", "an emission factor cannot be negative")
        if value is not None and valid_from is not None:
            rows.append(FactorRow(region, value, valid_from, valid_to, status, source, year))
    # Two rows for one region in force on the same day would make the lookup ambiguous.
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            if a.region != b.region:
                continue
            a_end, b_end = a.valid_to or date.max, b.valid_to or date.max
            if a.valid_from < b_end and b.valid_from < a_end:
                r.error(
                    f"rows[{rows.index(b)}].valid_from",
                    f"overlaps another row for region {a.region!r} "
                    f"({a.valid_from} to {a.valid_to or 'open'})",
                )
    r.fail_if_errors()
    assert unit is not None
    return FactorTable(
        id=table_id,
        name_zh=str(name.get("zh", "")),
        name_en=str(name.get("en", "")),
        unit=unit[0],
        rows=rows,
        parents=parents,
        file=file,
    )


def load_factor_tables(directory: Path = FACTORS_DIR) -> dict[str, FactorTable]:
    tables: dict[str, FactorTable] = {}
    errors: list[LoadError] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            table = load_factor_table(path.read_text(encoding="utf-8"), file=path.name)
        except MethodologyInvalid as exc:
            errors.extend(exc.errors)
            continue
        if table.id in tables:
            errors.append(LoadError(path.name, 1, "id", f"duplicate factor table id {table.id!r}"))
        tables[table.id] = table
    if errors:
        raise MethodologyInvalid(errors)
    return tables


# ---------------------------------------------------------------- methodologies


def _input_signs(spec: InputSpec) -> expr.Signs:
    lo, lo_open = (spec.gt, True) if spec.gt is not None else (spec.ge, False)
    hi, hi_open = (spec.lt, True) if spec.lt is not None else (spec.le, False)
    out: set[int] = set()
    if lo is None or lo < 0:
        out.add(-1)
    if hi is None or hi > 0:
        out.add(1)
    zero_above = lo is None or lo < 0 or (lo == 0 and not lo_open)
    zero_below = hi is None or hi > 0 or (hi == 0 and not hi_open)
    if zero_above and zero_below:
        out.add(0)
    if lo is not None and lo > 0:
        out.discard(-1)
    if hi is not None and hi < 0:
        out.discard(1)
    return frozenset(out)


def _mass_mg(r: _Reader, data: Mapping[str, Any], key: str, path: str) -> int | None:
    raw = data.get(key)
    if raw is None:
        return None
    where = f"{path}.{key}"
    m = _QUANTITY.match(raw) if isinstance(raw, str) else None
    if m is None:
        r.error(where, 'must be a quantity with a unit, e.g. "5 kg CO2e"')
        return None
    try:
        unit = parse_unit(m.group(2))
    except ValueError as exc:
        r.error(where, str(exc))
        return None
    if not compatible(unit, MG_CO2E):
        r.error(where, f"must be a mass of CO2e, not {show(unit)}")
        return None
    mg = Decimal(m.group(1)) * factor(unit, MG_CO2E)
    if mg != mg.to_integral_value():
        r.error(where, "must be a whole number of mg CO2e")
        return None
    return int(mg)


def load_methodology(
    text: str,
    *,
    file: str,
    tables: Mapping[str, FactorTable],
    origin: str = "",
    zone: ZoneInfo = DEFAULT_ZONE,
) -> CompiledMethodology:
    """Validate and compile one methodology version; MethodologyInvalid lists every problem."""
    data = _parse_toml(file, text)
    r = _Reader(file, text)
    r.unknown(data, _METHODOLOGY_KEYS, "")

    mid = r.string(data, "id", "") or ""
    if mid and not _ID.match(mid):
        r.error("id", "must be lowercase letters and digits joined by '-', e.g. shenzhen-metro")
    raw_version = data.get("version")
    version = (
        str(raw_version)
        if isinstance(raw_version, int | str) and not isinstance(raw_version, bool)
        else ""
    )
    if not version:
        r.error("version", 'is required, e.g. version = "1"')
    elif not _VERSION.match(version):
        r.error("version", "must be letters, digits, '.' and '-' (at most 32)")
    scenario = r.string(data, "scenario", "") or ""
    if scenario and scenario not in SCENARIOS:
        r.error("scenario", f"unknown scenario {scenario!r} (one of: {', '.join(SCENARIOS)})")
    kind = r.string(data, "kind", "") or ""
    if kind and kind not in KINDS:
        r.error("kind", f"must be one of {', '.join(KINDS)}")
    region = r.string(data, "region", "") or ""
    if region and not _REGION.match(region):
        r.error("region", "must be lowercase pinyin such as shenzhen, hubei or national")
    effective_from = r.day(data, "effective_from", "")
    effective_to = r.day(data, "effective_to", "", required=False)
    if effective_from and effective_to and effective_to <= effective_from:
        r.error("effective_to", "must be after effective_from")
    declared_status = r.status(data, "status", "") if "status" in data else "verified"
    notes, notes_zh = r.text(data, "notes", "")

    name = r.table(data, "name", "")
    r.unknown(name, {"zh", "en"}, "name")
    name_zh = r.string(name, "zh", "name")
    name_en = r.string(name, "en", "name")
    issuer = r.table(data, "issuer", "")
    r.unknown(issuer, {"zh", "en"}, "issuer")
    issuer_zh = r.string(issuer, "zh", "issuer")
    issuer_en = r.string(issuer, "en", "issuer", required=False)
    document = r.table(data, "document", "")
    r.unknown(document, {"title", "address"}, "document")
    doc_title = r.string(document, "title", "document")
    doc_address = r.string(document, "address", "document", required=False)

    symbols: dict[str, expr.Symbol] = {}
    taken: dict[str, str] = {}

    def claim(symbol: str, path: str) -> bool:
        if not _NAME.match(symbol) or symbol in expr.FUNCTIONS or symbol in expr.KEYWORDS:
            r.error(
                path,
                f"{symbol!r} is not a valid name (lowercase letters, digits, '_'; not a keyword)",
            )
            return False
        if symbol in taken:
            r.error(path, f"name {symbol!r} is already used by {taken[symbol]}")
            return False
        taken[symbol] = path
        return True

    # inputs
    inputs: dict[str, InputSpec] = {}
    raw_inputs = r.table(data, "inputs", "")
    if not raw_inputs and "inputs" in data:
        r.error("inputs", "declare at least one input")
    for iname, spec in raw_inputs.items():
        path = f"inputs.{iname}"
        if not isinstance(spec, dict):
            r.error(path, "must be a table")
            continue
        r.unknown(spec, {"unit", "type", "gt", "ge", "lt", "le", "description"}, path)
        if iname not in INPUT_UNITS:
            r.error(
                path, f"unknown input {iname!r} (the shared vocabulary: {', '.join(INPUT_UNITS)})"
            )
            continue
        unit = r.unit(spec, "unit", path)
        if unit is not None:
            expected = parse_unit(INPUT_UNITS[iname])
            if not compatible(unit[1], expected) or factor(unit[1], expected) != 1:
                r.error(
                    f"{path}.unit", f"{iname} is always in {INPUT_UNITS[iname]}, not {unit[0]!r}"
                )
        type_ = spec.get("type", "integer" if iname in INTEGER_INPUTS else "decimal")
        if type_ not in ("decimal", "integer"):
            r.error(f"{path}.type", 'must be "decimal" or "integer"')
        bounds = {k: r.decimal(spec, k, path, required=False) for k in ("gt", "ge", "lt", "le")}
        if bounds["gt"] is not None and bounds["ge"] is not None:
            r.error(f"{path}.ge", "give gt or ge, not both")
        if bounds["lt"] is not None and bounds["le"] is not None:
            r.error(f"{path}.le", "give lt or le, not both")
        low = bounds["gt"] if bounds["gt"] is not None else bounds["ge"]
        high = bounds["lt"] if bounds["lt"] is not None else bounds["le"]
        if low is not None and high is not None and low >= high:
            r.error(
                f"{path}.le" if bounds["le"] is not None else f"{path}.lt", "the range is empty"
            )
        description, description_zh = r.text(spec, "description", path)
        if not claim(iname, path) or unit is None:
            continue
        input_spec = InputSpec(
            iname,
            unit[0],
            type_ == "integer",
            bounds["gt"],
            bounds["ge"],
            bounds["lt"],
            bounds["le"],
            description,
            description_zh,
        )
        inputs[iname] = input_spec
        symbols[iname] = expr.Symbol(unit[1], _input_signs(input_spec))

    # parameters
    parameters: dict[str, Parameter] = {}
    statuses: list[str] = [declared_status]
    for pname, spec in r.table(data, "parameters", "", required=False).items():
        path = f"parameters.{pname}"
        if not isinstance(spec, dict):
            r.error(path, "must be a table")
            continue
        r.unknown(spec, {"value", "unit", "status", "source", "description"}, path)
        value = r.decimal(spec, "value", path)
        unit = r.unit(spec, "unit", path)
        status = r.status(spec, "status", path)
        source = r.source(spec, path)
        description, description_zh = r.text(spec, "description", path)
        if not claim(pname, path) or value is None or unit is None:
            continue
        parameters[pname] = Parameter(
            pname, value, unit[0], status, source, description, description_zh
        )
        symbols[pname] = expr.Symbol(unit[1], expr.signs_of(value))
        statuses.append(status)

    # factor-table references
    factors: dict[str, FactorRef] = {}
    for alias, spec in r.table(data, "factors", "", required=False).items():
        path = f"factors.{alias}"
        if not isinstance(spec, dict):
            r.error(path, "must be a table")
            continue
        r.unknown(spec, {"table", "region", "description"}, path)
        table_id = r.string(spec, "table", path)
        ref_region = r.string(spec, "region", path, required=False) or "record"
        if ref_region != "record" and not _REGION.match(ref_region):
            r.error(
                f"{path}.region",
                'must be "record" (the record\'s region) or a region such as national',
            )
        table = tables.get(table_id or "")
        if table_id and table is None:
            r.error(
                f"{path}.table",
                f"unknown factor table {table_id!r} (known: {', '.join(sorted(tables)) or 'none'})",
            )
        description, description_zh = r.text(spec, "description", path)
        if not claim(alias, path) or table is None:
            continue
        fixed = None if ref_region == "record" else ref_region
        factors[alias] = FactorRef(alias, table, fixed, description, description_zh)
        unit_obj = parse_unit(table.unit)
        signs = frozenset(s for row in table.rows for s in expr.signs_of(row.value))
        symbols[alias] = expr.Symbol(unit_obj, signs)
        # A methodology must be computable from its first day: its region needs a row in force then.
        check_region = fixed or region
        if effective_from and check_region and table.lookup(check_region, effective_from) is None:
            r.error(
                f"{path}.table",
                f"table {table.id!r} has no row in force for {check_region!r} "
                f"on effective_from {effective_from}",
            )
        statuses.extend(
            row.status
            for reg in table.chain(check_region or "national")
            for row in table.rows
            if row.region == reg
        )

    # eligibility rules: may use inputs, parameters and factors (they run before the steps)
    rules: list[Rule] = []
    raw_rules = data.get("eligibility", [])
    if not isinstance(raw_rules, list):
        r.error("eligibility", "must be an array of tables [[eligibility]]")
        raw_rules = []
    codes: set[str] = set()
    for i, rule in enumerate(raw_rules):
        path = f"eligibility[{i}]"
        if not isinstance(rule, dict):
            r.error(path, "must be a table")
            continue
        r.unknown(rule, {"code", "rule", "message_zh", "message_en"}, path)
        code = r.string(rule, "code", path)
        text_rule = r.string(rule, "rule", path)
        if code and not _NAME.match(code):
            r.error(f"{path}.code", "must be a snake_case code")
        if code in codes:
            r.error(f"{path}.code", f"duplicate rule code {code!r}")
        codes.add(code or "")
        if code is None or text_rule is None:
            continue
        try:
            node = expr.parse(text_rule)
            compiled = expr.compile_expr(node, symbols)
            if compiled.unit is not None:
                raise expr.ExprError("a rule must be a condition such as capacity_kw <= 1000", 1)
        except RecursionError:
            r.error(
                f"{path}.{'rule' if path.startswith('eligibility') else 'expr'}",
                "formula nested too deeply",
            )
            continue
        except expr.ExprError as exc:
            r.error(f"{path}.rule", f"{exc.message} (column {exc.column})")
            continue
        rules.append(
            Rule(
                code,
                text_rule,
                compiled.fn,
                tuple(expr.names(node)),
                r.string(rule, "message_zh", path, required=False),
                r.string(rule, "message_en", path, required=False),
            )
        )

    # steps
    steps: list[Step] = []
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        r.error("steps", "at least one [[steps]] entry is required")
        raw_steps = []
    for i, step in enumerate(raw_steps):
        path = f"steps[{i}]"
        if not isinstance(step, dict):
            r.error(path, "must be a table")
            continue
        r.unknown(step, {"name", "expr", "unit", "description"}, path)
        sname = r.string(step, "name", path)
        text_expr = r.string(step, "expr", path)
        unit = r.unit(step, "unit", path)
        description, description_zh = r.text(step, "description", path)
        if sname is None or text_expr is None or unit is None:
            continue
        if not claim(sname, f"{path}.name"):
            continue
        try:
            node = expr.parse(text_expr)
            compiled = expr.compile_expr(node, symbols)
            if compiled.unit is None:
                raise expr.ExprError("a step must compute a number, not a condition", 1)
            if not expr._is_zero_literal(compiled) and not compatible(compiled.unit, unit[1]):
                raise expr.ExprError(
                    f"the formula gives {show(compiled.unit)}, "
                    f"which cannot be expressed in the declared unit {unit[0]!r}",
                    1,
                )
        except RecursionError:
            r.error(
                f"{path}.{'rule' if path.startswith('eligibility') else 'expr'}",
                "formula nested too deeply",
            )
            continue
        except expr.ExprError as exc:
            r.error(f"{path}.expr", f"{exc.message} (column {exc.column})")
            continue
        fn = compiled.fn
        conversion = conversion_zh = None
        if not expr._is_zero_literal(compiled) and compiled.unit is not None:
            # e.g. kg CO2e/kWh x kWh declared as g CO2e: fold the 1000 in once, here
            k = factor(compiled.unit, unit[1])
            fn = expr.scale(fn, k)
            if k != 1:
                conversion = f"computed in {show(compiled.unit)}, converted x {k} to {unit[0]}"
                conversion_zh = f"按 {show(compiled.unit)} 计算，乘以 {k} 换算为 {unit[0]}"
        steps.append(
            Step(
                sname,
                text_expr,
                unit[0],
                fn,
                tuple(expr.names(node)),
                description,
                conversion,
                description_zh,
                conversion_zh,
            )
        )
        symbols[sname] = expr.Symbol(unit[1], compiled.signs)

    # result, rounding, caps
    result = r.table(data, "result", "", required=False)
    r.unknown(result, {"step", "rounding", "allow_negative"}, "result")
    output = r.string(result, "step", "result", required=False) or (steps[-1].name if steps else "")
    rounding = r.string(result, "rounding", "result", required=False) or "half_even"
    if rounding not in ROUNDINGS:
        r.error("result.rounding", f"must be one of {', '.join(ROUNDINGS)}")
    allow_negative = result.get("allow_negative", False)
    if not isinstance(allow_negative, bool):
        r.error("result.allow_negative", "must be true or false")
        allow_negative = False
    out_step = next((s for s in steps if s.name == output), None)
    to_mg = Decimal(1)
    if steps and out_step is None:
        r.error("result.step", f"no step named {output!r}")
    elif out_step is not None:
        out_unit = parse_unit(out_step.unit)
        if not compatible(out_unit, MG_CO2E):
            r.error(
                f"steps[{steps.index(out_step)}].unit",
                f"the result must be a mass of CO2e, not {out_step.unit!r}",
            )
        else:
            to_mg = factor(out_unit, MG_CO2E)
    caps = r.table(data, "caps", "", required=False)
    r.unknown(caps, {"per_record", "per_day"}, "caps")
    per_record = _mass_mg(r, caps, "per_record", "caps")
    per_day = _mass_mg(r, caps, "per_day", "caps")

    r.fail_if_errors()
    assert effective_from is not None and name_zh and name_en and issuer_zh and doc_title
    return CompiledMethodology(
        id=mid,
        version=version,
        scenario=scenario,
        kind=kind,
        region=region,
        name_zh=name_zh,
        name_en=name_en,
        issuer_zh=issuer_zh,
        issuer_en=issuer_en or "",
        document_title=doc_title,
        document_address=doc_address,
        effective_from=effective_from,
        effective_to=effective_to,
        inputs=inputs,
        parameters=parameters,
        factors=factors,
        rules=rules,
        steps=steps,
        output=output,
        output_unit=out_step.unit if out_step else "",
        to_mg=to_mg,
        rounding=rounding,
        allow_negative=allow_negative,
        per_record_cap_mg=per_record,
        per_day_cap_mg=per_day,
        status=worst_status(statuses),
        notes=notes,
        notes_zh=notes_zh,
        source_text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        origin=origin,
        zone=zone,
    )


def load_catalogue(
    tables: Mapping[str, FactorTable],
    directory: Path = CATALOGUE_DIR,
    *,
    zone: ZoneInfo = DEFAULT_ZONE,
) -> list[CompiledMethodology]:
    """Every shipped methodology version; one bad file fails the load, with all errors listed."""
    out: list[CompiledMethodology] = []
    errors: list[LoadError] = []
    seen: dict[tuple[str, str], str] = {}
    for path in sorted(directory.rglob("*.toml")):
        name = str(path.relative_to(directory))
        try:
            m = load_methodology(
                path.read_text(encoding="utf-8"),
                file=name,
                tables=tables,
                origin="catalogue",
                zone=zone,
            )
        except MethodologyInvalid as exc:
            errors.extend(exc.errors)
            continue
        if m.key in seen:
            errors.append(
                LoadError(
                    name, 1, "version", f"{m.id}@{m.version} is also defined in {seen[m.key]}"
                )
            )
        seen[m.key] = name
        out.append(m)
    if errors:
        raise MethodologyInvalid(errors)
    return out
