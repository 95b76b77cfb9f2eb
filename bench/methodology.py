"""Calculations per second for a compiled trip methodology, trace off and on, beside plain Python.

Run: .venv/bin/python bench/methodology.py [--seconds 1.0]
Prints JSON. One core, one thread; inputs arrive as strings, as they do from a partner record.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from tanhui.methodology.loader import load_catalogue, load_factor_tables

DISTANCES = [f"{km}.{tenth}" for km in range(1, 40) for tenth in range(10)]


def rate(fn: Callable[[str], object], seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for d in DISTANCES:
            fn(d)
        n += len(DISTANCES)
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()

    tables = load_factor_tables()
    catalogue = {m.key: m for m in load_catalogue(tables)}
    metro = catalogue[("shenzhen-metro", "1")]
    charging = catalogue[("cn-ev-charging", "1")]
    at = date(2025, 6, 1)

    factor = Decimal("46.7")
    one = Decimal(1)
    low, high = Decimal(0), Decimal(200)

    def direct(d: str) -> int:
        # The same work written by hand: parse, range-check, multiply, convert, round half-even.
        km = Decimal(d)
        if not low < km <= high:
            raise ValueError(d)
        return int((factor * km * 1000).quantize(one, rounding=ROUND_HALF_EVEN))

    def compiled(d: str) -> object:
        return metro.calculate({"distance_km": d}, at=at)

    def traced(d: str) -> object:
        return metro.calculate({"distance_km": d}, at=at, trace=True)

    def grid(d: str) -> object:
        return charging.calculate({"kwh": d}, at=at, region="shenzhen")

    for d in DISTANCES:  # the engine and plain Python agree before anything is timed
        assert compiled(d).reduction_mg == direct(d)  # type: ignore[attr-defined]

    result = {
        "benchmark": "methodology",
        "python": platform.python_version(),
        "methodology": "shenzhen-metro@1",
        "calc_per_s": {
            "compiled_trace_off": round(rate(compiled, args.seconds)),
            "compiled_trace_on": round(rate(traced, args.seconds)),
            "direct_python": round(rate(direct, args.seconds)),
            "ev_charging_with_grid_lookup_trace_off": round(rate(grid, args.seconds)),
        },
        "target_trace_off": 100_000,
    }
    result["meets_target"] = result["calc_per_s"]["compiled_trace_off"] >= 100_000  # type: ignore[index]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
