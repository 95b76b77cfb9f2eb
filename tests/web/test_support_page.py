"""The console's citizen lookup (客服查询): by phone, with a reason the citizen reads in their own
access log, beside every other read of their data."""

from __future__ import annotations

import pytest

from tanhui.identity import service as identity_service
from tanhui.web import security
from tests.fixtures import identity as identity_fx
from tests.web.conftest import World, csrf, login_as, staff


def _lookup(client, phone: str, why: str = "客服工单 #2026-1130"):  # type: ignore[no-untyped-def]
    data = {security.CSRF_FIELD: csrf(client), "phone": phone, "why": why}
    return client.post("/console/citizens?lang=zh", data=data)


def test_a_lookup_shows_the_citizen_and_the_citizen_sees_who_looked(
    client, session, world: World, reviewer
):
    login_as(client, reviewer.token)
    page = _lookup(client, world.citizen.phone)
    assert page.status_code == 200, page.text[:2000]
    masked = f"{world.citizen.phone[:3]}****{world.citizen.phone[-4:]}"
    assert masked in page.text and world.citizen.phone not in page.text
    assert 'id="citizen-bindings"' in page.text and world.puid in page.text
    assert f"{world.credited_id}" in page.text and 'id="citizen-records"' in page.text
    login_as(client, world.citizen.token)
    mine = client.get("/me/privacy?lang=zh").text
    assert 'id="access-log"' in mine and "客服工单 #2026-1130" in mine
    assert "你的资料和已关联应用" in mine and "你的减排记录" in mine and "平台工作人员" in mine
    reads = identity_service.access_log(session, world.citizen.id)
    assert {e.why for e in reads} >= {"客服工单 #2026-1130"}


@pytest.mark.parametrize(
    ("phone", "why", "where", "text"),
    [
        ("mine", "", "e-why", "请填写查询理由"),
        ("123", "工单 1", "e-phone", "11"),
        ("13999999999", "工单 1", "e-phone", "没有使用该手机号的市民。"),
    ],
)
def test_a_lookup_needs_a_reason_and_a_known_number(
    client, session, world, reviewer, phone, why, where, text
):
    before = len(identity_service.access_log(session, world.citizen.id))
    login_as(client, reviewer.token)
    page = _lookup(client, world.citizen.phone if phone == "mine" else phone, why)
    assert page.status_code in (404, 422), page.text[:2000]
    assert f'id="{where}"' in page.text and text in page.text
    assert len(identity_service.access_log(session, world.citizen.id)) == before


def test_only_reviewers_and_operators_look_citizens_up(client, session, world):
    before = len(identity_service.access_log(session, world.citizen.id))
    buyer = staff(session, "buyer")
    login_as(client, buyer.token)
    assert client.get("/console/citizens").status_code == 403
    assert _lookup(client, world.citizen.phone).status_code == 403
    assert len(identity_service.access_log(session, world.citizen.id)) == before


def test_nobody_read_yet(client, session):
    fresh = identity_fx.citizen(session)
    session.flush()
    login_as(client, fresh.token)
    assert "还没有人查阅过你的数据。" in client.get("/me/privacy?lang=zh").text
