"""Demo activity: a few thousand realistic partner records over the last 60 days, through the pipeline.

Records are pushed day by day as partners would have sent them (the pipeline's `now` is early the next
morning, when a daily file arrives: a household's whole-day electricity record ends at midnight), so
60-day-old trips are judged against the window of their own day, not today's.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tanhui.activity import service as activity_service
from tanhui.identity.principal import PartnerPrincipal
from tanhui.kit.settings import get_settings

DAYS = 60

# (distance km range, minutes range) of a typical trip; Shenzhen metro trips average ~12 km.
TRIPS = {
    "metro": ((2.5, 28.0), (8, 55)),
    "bus": ((1.5, 14.0), (8, 50)),
    "bike_share": ((0.6, 5.5), (4, 28)),
}


def _principal(p: dict[str, Any]) -> PartnerPrincipal:
    return PartnerPrincipal(
        int(p["partner_id"]),
        int(p["organisation_id"]),
        str(p["key_id"]),
        str(p.get("name", "partner")),
        frozenset(p["scenarios"]),
        None,
    )


def _record(rng: Any, n: int, puid: str, scenario: str, start: datetime) -> dict[str, Any]:
    if scenario in TRIPS:
        (lo, hi), (mlo, mhi) = TRIPS[scenario]
        km = round(rng.uniform(lo, hi), 1)
        minutes = rng.randint(mlo, mhi)
        # Keep honest trips under each mode's speed bound (a reviewer sees only the odd ones).
        minutes = max(
            minutes, int(km / {"metro": 60, "bus": 35, "bike_share": 18}[scenario] * 60) + 1
        )
        quantities = {"distance_km": f"{km}"}
    elif scenario == "ev_charging":
        minutes = rng.randint(30, 150)
        quantities = {"kwh": f"{rng.uniform(8, 60):.1f}"}
    else:  # electricity_saving: the day's saving against the household baseline
        minutes = 24 * 60 - 1
        start = start.replace(hour=0, minute=0)
        quantities = {"kwh": f"{rng.uniform(0.3, 6):.2f}"}
    return {
        "external_id": f"demo-{scenario}-{n:06d}",
        "partner_user_id": puid,
        "scenario": scenario,
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(minutes=minutes)).isoformat(),
        "quantities": quantities,
    }


def seed(session: Session, ctx: Any) -> None:
    rng = ctx.rng
    zone = get_settings().zone
    partners = {int(p["partner_id"]): p for p in ctx.data.get("partners", [])}
    citizens = ctx.data.get("citizens", [])
    if not partners or not citizens:
        ctx.summary.append("activity: skipped (no demo partners or citizens)")
        return
    today = datetime.now(zone).date()
    by_day: dict[Any, dict[int, list[dict[str, Any]]]] = {}
    n = 0
    for citizen in citizens:
        for partner_id, puid in citizen["partner_user_ids"].items():
            p = partners[int(partner_id)]
            scenario = p["scenarios"][0]
            # Regulars ride most working days; others a few times a month.
            rate = rng.choice([0.15, 0.3, 0.6])
            for back in range(DAYS, 0, -1):
                day = today - timedelta(days=back)
                if rng.random() > rate:
                    continue
                hour = rng.choice([7, 8, 8, 9, 12, 17, 18, 18, 19, 21])
                local = datetime.combine(day, time(hour, rng.randrange(60)), zone)
                n += 1
                record = _record(rng, n, puid, scenario, local)
                if rng.random() < 0.01 and scenario in TRIPS:  # a suspiciously fast trip
                    record["ended_at"] = (local + timedelta(minutes=8)).isoformat()
                    record["quantities"] = {"distance_km": "14.5"}
                by_day.setdefault(day, {}).setdefault(int(partner_id), []).append(record)
    # Noise partners really send: an unbound user, a resend of yesterday's file, and a bad app
    # release (two recent days on which a bike-share app's GPS filter tripled some distances).
    glitch_days = {today - timedelta(days=rng.randint(2, 12)) for _ in range(2)}
    for day in glitch_days:
        for partner_id, records in by_day.get(day, {}).items():
            if "bike_share" not in partners[partner_id]["scenarios"]:
                continue
            for record in records[: max(1, len(records) // 4)]:
                km = Decimal(record["quantities"]["distance_km"]) * 3 + 20
                record["quantities"] = {"distance_km": str(km)}
    for per_partner in by_day.values():
        for records in per_partner.values():
            if rng.random() < 0.05:
                stray = dict(records[0], external_id=records[0]["external_id"] + "-x")
                stray["partner_user_id"] = "unknown-user"
                records.append(stray)
            if rng.random() < 0.03:
                records.append(records[0])
    counts: Counter[str] = Counter()
    for day in sorted(by_day):
        morning_after = datetime.combine(day + timedelta(days=1), time(6, 0), zone).astimezone(UTC)
        for partner_id, records in sorted(by_day[day].items()):
            principal = _principal(partners[partner_id])
            for start in range(0, len(records), activity_service.MAX_BATCH):
                chunk = records[start : start + activity_service.MAX_BATCH]
                for result in activity_service.ingest(session, principal, chunk, now=morning_after):
                    counts[result["status"]] += 1
                # Each batch its own transaction, as over the API. In one transaction, PostgreSQL
                # keeps every version of the rows each batch updates (the platform's issuance
                # accounts, above all) until the end, and each batch reads through all of them:
                # the demo took a minute on PostgreSQL instead of seconds.
                session.commit()
    ctx.data["activity_counts"] = dict(counts)
    ctx.summary.append(
        "activity: "
        + ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
        + f" records over {DAYS} days"
    )
