"""Platform-wide activity figures for the public landing page and the operator dashboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tanhui.activity.models import ActivityRecord as Record
from tanhui.kit.db import utcnow
from tanhui.kit.settings import get_settings


def platform_summary(session: Session, *, days: int = 30) -> dict[str, Any]:
    """Participants, credited records and reduction (what stands today: reversed records are out),
    and the last `days` platform-time-zone days of credited reduction by scenario, oldest first."""
    credited = Record.status == "credited"
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
