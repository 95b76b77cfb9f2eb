"""Partner onboarding on the web: an organisation applies on a public page; a reviewer approves
named scenarios until a day (a new partner's key is shown once) or rejects with a reason."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tanhui.identity import service as identity_service
from tanhui.web import security
from tests.web.conftest import csrf, login_as, staff

FORM = {
    "name": "深圳巴士集团",
    "licence_no": "91440300192241158P",
    "data_collection": "IC 卡和二维码验票机记录，每日上报",
    "redirect_uris": "https://bus.example/cb",
    "contact": "张工 ops@bus.example",
    "scenario_bus": "1",
    "scenario_metro": "1",
}


def _apply(client, **changes):  # type: ignore[no-untyped-def]
    data = {security.CSRF_FIELD: csrf(client), "idempotency_key": "form-key-1", **FORM, **changes}
    return client.post("/partners/apply?lang=zh", data=data, follow_redirects=False)


def _pending(session):  # type: ignore[no-untyped-def]
    return identity_service.list_applications(session, status="pending")


def test_an_organisation_applies_once_even_if_it_sends_twice(client, session):
    page = client.get("/partners/apply?lang=zh").text
    assert "申请成为合作方" in page and 'name="scenario_bus"' in page and "公交" in page
    done = _apply(client)
    assert done.status_code == 303, done.text[:2000]
    again = _apply(client)  # a double click: the form's key makes it the same application
    assert again.headers["location"] == done.headers["location"]
    [application] = _pending(session)
    assert (application.name, application.scenarios) == ("深圳巴士集团", ["bus", "metro"])
    shown = client.get(done.headers["location"] + "&lang=zh").text
    assert "申请已收到" in shown and f"申请编号 {application.id}。" in shown
    assert 'href="/partners/apply"' in client.get("/?lang=zh").text


@pytest.mark.parametrize(
    ("changes", "where", "text"),
    [
        ({"scenario_bus": "", "scenario_metro": ""}, "e-scenarios", "请至少选择一个场景"),
        ({"name": ""}, "e-name", "此项必填"),
        ({"redirect_uris": "http://bus.example/cb"}, "e-redirect_uris", "请填写 https 地址"),
        ({"name": "名" * 201}, "e-name", "内容过长，请缩短。"),
    ],
)
def test_a_bad_application_is_shown_beside_its_field(client, session, changes, where, text):
    page = _apply(client, **changes)
    assert page.status_code == 422, page.text[:2000]
    assert f'id="{where}"' in page.text and text in page.text
    assert 'value="form-key-1"' in page.text  # the same form key, for the corrected resend
    assert _pending(session) == []


def test_a_reviewer_approves_some_scenarios_and_the_key_is_shown_once(client, session, reviewer):
    assert _apply(client).status_code == 303
    [application] = _pending(session)
    login_as(client, reviewer.token)
    page = client.get("/console/partners?lang=zh").text
    assert f'id="application-{application.id}"' in page and "IC 卡和二维码验票机记录" in page
    until = (date.today() + timedelta(days=365)).isoformat()
    decided = client.post(
        f"/console/partners/applications/{application.id}?lang=zh",
        data={
            security.CSRF_FIELD: csrf(client),
            "decision": "approve",
            "scenario_bus": "1",  # metro left out
            "valid_until": until,
        },
    )
    assert decided.status_code == 200 and 'id="new-secret"' in decided.text
    session.expire_all()
    assert application.status == "approved" and application.approved_scenarios == ["bus"]
    partner = identity_service.get_partner(session, application.partner_id)
    assert partner.scenarios == ["bus"] and partner.approved_until.isoformat() == until
    assert 'id="decided-applications"' in client.get("/console/partners?lang=zh").text


def test_a_rejection_needs_a_reason(client, session, reviewer):
    assert _apply(client).status_code == 303
    [application] = _pending(session)
    login_as(client, reviewer.token)
    url = f"/console/partners/applications/{application.id}?lang=zh"
    no_reason = client.post(url, data={security.CSRF_FIELD: csrf(client), "decision": "reject"})
    assert no_reason.status_code == 422 and f'id="note-err-{application.id}"' in no_reason.text
    past = client.post(
        url,
        data={
            security.CSRF_FIELD: csrf(client),
            "decision": "approve",
            "scenario_bus": "1",
            "valid_until": "2020-01-01",
        },
    )
    assert past.status_code == 422 and "请选择今天或之后的日期。" in past.text
    assert len(_pending(session)) == 1
    done = client.post(
        url,
        data={security.CSRF_FIELD: csrf(client), "decision": "reject", "note": "营业执照无法核实"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    session.expire_all()
    assert (application.status, application.review_note) == ("rejected", "营业执照无法核实")


def test_only_reviewers_decide(client, session):
    assert _apply(client).status_code == 303
    [application] = _pending(session)
    buyer = staff(session, "buyer")
    login_as(client, buyer.token)
    page = client.get("/console/partners").text
    assert f'action="/console/partners/applications/{application.id}"' not in page
    refused = client.post(
        f"/console/partners/applications/{application.id}",
        data={security.CSRF_FIELD: csrf(client), "decision": "reject", "note": "x"},
    )
    assert refused.status_code == 403 and len(_pending(session)) == 1


def test_approve_clicked_twice_shows_the_one_new_key_both_times(client, session, reviewer):
    assert _apply(client).status_code == 303
    [application] = _pending(session)
    login_as(client, reviewer.token)
    assert 'name="decision_key"' in client.get("/console/partners").text
    data = {
        security.CSRF_FIELD: csrf(client),
        "decision_key": "form-key-7",
        "decision": "approve",
        "scenario_bus": "1",
        "valid_until": (date.today() + timedelta(days=30)).isoformat(),
    }
    first = client.post(f"/console/partners/applications/{application.id}", data=data)
    second = client.post(f"/console/partners/applications/{application.id}", data=data)
    assert first.status_code == second.status_code == 200, second.text[:2000]
    session.expire_all()
    [key] = identity_service.partner_keys(session, application.partner_id)
    assert key.key_id in first.text and key.key_id in second.text
    assert 'id="new-secret"' in second.text
