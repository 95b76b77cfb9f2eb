"""The console's review queue: why each record was held, in words; the trip's minutes and speed;
a filter by reason; and ticked records approved or rejected at once."""

from __future__ import annotations

from sqlalchemy import select

from tanhui.activity.models import ActivityRecord
from tanhui.web import security
from tests.fixtures import activity as activity_fx
from tests.web.conftest import csrf, login_as


def _statuses(session, ids):  # type: ignore[no-untyped-def]
    rows = session.scalars(select(ActivityRecord).where(ActivityRecord.id.in_(ids))).all()
    return {r.id: r.status for r in rows}


def test_the_queue_says_why_and_how_fast(client, session, reviewer):
    ids = activity_fx.held(session, activity_fx.partner(session), 2)
    login_as(client, reviewer.token)
    page = client.get("/console/review?lang=zh").text
    assert "速度接近上限" in page and 'title="speed_near_bound"' in page
    assert "30 分钟 · 118.0 km/h" in page and "出行距离" in page
    for rid in ids:
        assert f'name="pick_{rid}"' in page
    assert 'href="/console/review?reason=speed_near_bound"' in page
    only = client.get("/console/review?reason=long_trip&lang=zh").text
    assert "没有待审核的记录。" in only


def test_ticked_records_are_approved_together(client, session, reviewer):
    ids = activity_fx.held(session, activity_fx.partner(session), 3)
    login_as(client, reviewer.token)
    form = {security.CSRF_FIELD: csrf(client), "decision": "approve"}
    form.update({f"pick_{rid}": "1" for rid in ids[:2]})
    done = client.post("/console/review", data=form, follow_redirects=False)
    assert done.status_code == 303, done.text[:2000]
    assert _statuses(session, ids) == {ids[0]: "credited", ids[1]: "credited", ids[2]: "review"}
    page = client.get(done.headers["location"] + "&lang=zh").text
    assert "已处理 2 条记录。" in page
    # The same ticks again: nothing left to decide, and the page says so.
    again = client.post("/console/review", data=form, follow_redirects=False)
    page = client.get(again.headers["location"] + "&lang=zh").text
    assert "已处理 0 条记录。" in page and "2 条未能处理" in page


def test_rejecting_ticked_records_needs_a_reason(client, session, reviewer):
    ids = activity_fx.held(session, activity_fx.partner(session), 2)
    login_as(client, reviewer.token)
    form = {security.CSRF_FIELD: csrf(client), "decision": "reject", "reason": " "}
    form.update({f"pick_{rid}": "1" for rid in ids})
    refused = client.post("/console/review?lang=zh", data=form)
    assert refused.status_code == 422 and 'id="bulk-err"' in refused.text
    assert set(_statuses(session, ids).values()) == {"review"}
    form["reason"] = "同一行程被重复上报"
    done = client.post("/console/review", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert set(_statuses(session, ids).values()) == {"rejected"}


def test_nothing_ticked_is_an_error_beside_the_buttons(client, session, reviewer):
    activity_fx.held(session, activity_fx.partner(session), 1)
    login_as(client, reviewer.token)
    page = client.post(
        "/console/review?lang=zh", data={security.CSRF_FIELD: csrf(client), "decision": "approve"}
    )
    assert page.status_code == 422 and "请至少勾选一条记录" in page.text
