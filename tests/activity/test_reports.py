from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from tanhui.activity import service as activity_service
from tanhui.kit.settings import get_settings
from tests.fixtures import activity as activity_fx


def test_platform_summary_counts_what_stands_credited(session: Session) -> None:
    before = activity_service.platform_summary(session)
    partner = activity_fx.partner(session, scenarios=("metro", "bus"))
    puid_a, _ = activity_fx.bind(session, partner)
    puid_b, _ = activity_fx.bind(session, partner)
    start = datetime.now(UTC) - timedelta(hours=3)
    results = activity_service.ingest(
        session,
        partner.principal,
        [
            activity_fx.record(puid_a, start=start, quantities={"distance_km": "10"}),
            activity_fx.record(
                puid_b, scenario="bus", start=start, quantities={"distance_km": "5"}
            ),
            activity_fx.record("nobody", start=start),  # rejected: unbound
        ],
    )
    credited = [r for r in results if r["status"] == "credited"]
    assert len(credited) == 2

    after = activity_service.platform_summary(session)
    assert after["participants"] - before["participants"] == 2
    assert after["records"] - before["records"] == 2
    assert after["total_mg"] - before["total_mg"] == sum(r["reduction_mg"] for r in credited)
    assert len(after["daily"]) == 30
    day = start.astimezone(get_settings().zone).date().isoformat()
    today = next(d for d in after["daily"] if d["date"] == day)
    assert {"metro", "bus"} <= set(today["by_scenario"])
