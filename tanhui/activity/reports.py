"""Activity figures: platform-wide for the public landing page and the operator dashboard, and per
partner for an operator checking that a partner's feed is healthy."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tanhui.activity.models import ActivityRecord as Record
from tanhui.activity.pipeline import CITIZEN_STATUSES, CREDITED, REJECTED
from tanhui.kit.db import utcnow
from tanhui.kit.settings import get_settings


def platform_summary(session: Session, *, days: int = 30) -> dict[str, Any]:
    """Participants, credited records and reduction (what stands today: reversed records are out),
    and the last `days` platform-time-zone days of credited reduction by scenario, oldest first."""
    credited = Record.status == CREDITED
    participants, records, total_mg = session.execute(
        select(
            func.count(func.distinct(Record.citizen_id)),
            func.count(),
            func.coalesce(func.sum(Record.reduction_mg), 0),
        ).where(credited)
    ).one()
    today = utcnow().astimezone(get_settings().zone).date()
    first = today - timedelta(days=days - 1)
    by_day: dict[Any, dict[str, int]] = {first + timedelta(days=n): {} for n in range(days)}
    for day, scenario, mg in session.execute(
        select(Record.day, Record.scenario, func.sum(Record.reduction_mg))
        .where(credited, Record.day >= first, Record.day <= today)
        .group_by(Record.day, Record.scenario)
    ):
        by_day[day][scenario] = int(mg)
    return {
        "participants": int(participants),
        "records": int(records),
        "total_mg": int(total_mg),
        "daily": [{"date": day.isoformat(), "by_scenario": by_day[day]} for day in sorted(by_day)],
    }


MAX_DAYS = 90


def partner_activity(
    session: Session, partner_id: int, *, days: int = 14, today: date | None = None
) -> dict[str, Any]:
    """A partner's records of the last `days` days (by the day the trip started, platform time
    zone, as the partner's reconciliation counts them): per day and status, the credited reduction,
    and why records were refused, most frequent first.

    A partner whose rejections climb (an unbound-user wave after an app release, implausible speeds
    from a broken GPS feed) shows here before citizens complain."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days is 1 to {MAX_DAYS}")
    today = today or utcnow().astimezone(get_settings().zone).date()
    first = today - timedelta(days=days - 1)
    per_day: dict[date, Counter[str]] = {first + timedelta(days=n): Counter() for n in range(days)}
    codes: Counter[str] = Counter()
    credited_mg = 0
    # One pass over the (partner_id, day) index range.
    for day, status, code, n, mg in session.execute(
        select(Record.day, Record.status, Record.code, func.count(), func.sum(Record.reduction_mg))
        .where(Record.partner_id == partner_id, Record.day >= first, Record.day <= today)
        .group_by(Record.day, Record.status, Record.code)
    ):
        per_day[day][status] += int(n)
        if status == REJECTED:
            codes[code or "unknown"] += int(n)
        elif status == CREDITED:
            credited_mg += int(mg or 0)
    totals = Counter[str]()
    for counts in per_day.values():
        totals.update(counts)
    return {
        "partner_id": partner_id,
        "since": first.isoformat(),
        "until": today.isoformat(),
        "timezone": get_settings().timezone,
        "totals": {"records": sum(totals.values()), **{s: totals[s] for s in CITIZEN_STATUSES}},
        "credited_mg": credited_mg,
        "daily": [
            {"date": day.isoformat(), **{s: per_day[day][s] for s in CITIZEN_STATUSES}}
            for day in sorted(per_day)
        ],
        "rejections": [
            {"code": c, "records": n} for c, n in sorted(codes.items(), key=lambda x: (-x[1], x[0]))
        ],
    }
