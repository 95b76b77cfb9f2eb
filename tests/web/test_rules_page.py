"""The console's checks page: the parameters in force per scenario, and an operator's change of one
of them, which the next batch is judged by."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tanhui.activity import rules as rules_mod
from tanhui.activity import service as activity_service
from tanhui.web import security
from tanhui.web.views import rules as rules_view
from tests.fixtures import activity as activity_fx
from tests.web.conftest import csrf, login_as, staff


def test_every_parameter_has_its_column():
    assert sorted(rules_view.SHOWN) == sorted(rules_mod.PARAMS)


def _change(client, **fields):  # type: ignore[no-untyped-def]
    data = {security.CSRF_FIELD: csrf(client), "scenario": "metro", "effective_on": "", **fields}
    return client.post("/console/rules?lang=zh", data=data, follow_redirects=False)


def test_reviewers_see_the_checks_but_cannot_change_them(client, session, reviewer):
    login_as(client, reviewer.token)
    page = client.get("/console/rules?lang=zh").text
    assert 'id="rules-metro"' in page and "速度上限（km/h）" in page and "120" in page
    assert 'id="rule-form"' not in page
    refused = _change(client, param="max_speed_kmh", value="100")
    assert refused.status_code == 403
    assert activity_service.rules_in_force(session)["metro"]["max_speed_kmh"] == "120"


def test_other_staff_are_turned_away(client, session):
    buyer = staff(session, "buyer")
    login_as(client, buyer.token)
    assert client.get("/console/rules").status_code == 403


def test_a_change_applies_to_the_next_batch(client, session, operator):
    partner = activity_fx.partner(session)
    puid, _ = activity_fx.bind(session, partner)
    login_as(client, operator.token)
    done = _change(client, param="max_speed_kmh", value="100")
    assert done.status_code == 303, done.text[:2000]
    page = client.get(done.headers["location"].replace("#changes", "") + "&lang=zh").text
    assert "修改已保存" in page and "已修改" in page
    assert "速度上限（km/h） → <strong>100</strong>" in page and operator.username in page
    # 110 km/h on the metro was plausible under the shipped 120; now it is refused.
    start = datetime.now(UTC) - timedelta(hours=3)
    [answer] = activity_service.ingest(
        session,
        partner.principal,
        [activity_fx.record(puid, start=start, minutes=30, quantities={"distance_km": "55"})],
    )
    assert (answer["status"], answer["code"]) == ("rejected", "implausible_speed")


def test_a_change_from_a_later_day_waits_for_it(client, session, operator):
    login_as(client, operator.token)
    later = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    assert (
        _change(client, param="review_distance_km", value="60", effective_on=later).status_code
        == 303
    )
    assert activity_service.rules_in_force(session)["metro"]["review_distance_km"] == "100"
    assert "60" in client.get("/console/rules?lang=zh").text  # listed among the changes


@pytest.mark.parametrize(
    ("fields", "where", "text"),
    [
        ({"param": "max_speed_kmh", "value": "0"}, "e-value", "该参数不接受这个值。"),
        ({"param": "max_speed_kmh", "value": "fast"}, "e-value", "请填写正数"),
        ({"param": "max_age_days", "value": "1.5"}, "e-value", "请填写 0 或更大的整数"),
        ({"param": "dedupe_overlaps", "value": "2"}, "e-value", "请选择是或否"),
        ({"param": "teleport", "value": "1"}, "e-param", "请选择参数"),
        (
            {"param": "max_speed_kmh", "value": "90", "scenario": "flying"},
            "e-scenario",
            "请选择场景",
        ),
        (
            {"param": "max_speed_kmh", "value": "90", "effective_on": "next week"},
            "e-effective_on",
            "2026-01-31",
        ),
    ],
)
def test_bad_input_is_shown_beside_its_field(client, session, operator, fields, where, text):
    login_as(client, operator.token)
    page = _change(client, **fields)
    assert page.status_code == 422, page.text[:2000]
    assert f'id="{where}"' in page.text and text in page.text
    assert activity_service.rule_changes(session) == []


def test_dedupe_is_switched_with_one_and_zero(client, session, operator):
    login_as(client, operator.token)
    assert _change(client, param="dedupe_overlaps", value="0").status_code == 303
    assert activity_service.rules_in_force(session)["metro"]["dedupe_overlaps"] is False
