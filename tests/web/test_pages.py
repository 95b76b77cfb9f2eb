"""Every page renders for its audience, refuses others, shows errors beside fields, never 500s."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tanhui.activity import service as activity_service
from tanhui.activity.models import ActivityRecord
from tanhui.identity import service as identity_service
from tanhui.incentives import service as incentives_service
from tanhui.web import security
from tests.fixtures import activity as activity_fx
from tests.web.conftest import World, csrf, login_as, staff

CITIZEN_PAGES = ["/me", "/me/records", "/mall", "/mall/orders", "/me/apps", "/me/privacy"]
CONSOLE_PAGES = [
    "/console",
    "/console/review",
    "/console/methodologies",
    "/console/methodologies/wuhan-metro",
    "/console/factors",
    "/console/partners",
    "/console/mall",
    "/console/ledger",
    "/console/staff",
    "/console/password",
    "/console/rules",
    "/console/citizens",
]


def _ok(page) -> None:  # type: ignore[no-untyped-def]
    assert page.status_code == 200, page.text[:2000]
    assert re.search(r"<title>[^<]+</title>", page.text)
    assert "<html lang=" in page.text


class TestCitizen:
    @pytest.mark.parametrize("lang", ["zh", "en"])
    def test_every_page_renders(self, client, world: World, lang):
        login_as(client, world.citizen.token)
        for path in [
            *CITIZEN_PAGES,
            f"/me/records/{world.credited_id}",
            f"/mall/rewards/{world.reward.id}",
        ]:
            _ok(client.get(f"{path}?lang={lang}"))

    def test_home_shows_totals_with_units_and_the_honest_tree_factor(self, client, world):
        login_as(client, world.citizen.token)
        page = client.get("/me?lang=en").text
        assert re.search(r'id="total-reduction">[\d.,]+ (g|kg|t)<', page)
        assert "Approximation" in page
        assert "Last 30 days" in page and "Last 12 months" in page
        assert page.count("<svg") >= 2
        assert "Same days last month" in page
        assert "上月同期" in client.get("/me?lang=zh").text

    def test_home_shows_what_points_are_worth_and_warns_before_they_expire(
        self, client, session, world
    ):
        from datetime import UTC, datetime, timedelta

        from tanhui.incentives import service as incentives_service

        # Points earned a year ago expire at the end of this year (the default rule).
        earned = datetime.now(UTC) - timedelta(days=365)
        incentives_service.award_points(
            session,
            [incentives_service.Award(world.citizen.id, 1_230_000, earned, "test:old", "old-1")],
        )
        session.flush()
        points = incentives_service.points_summary(session, world.citizen.id)
        first_expiry = points.expiring[0][0]
        login_as(client, world.citizen.token)
        page = client.get("/me?lang=en").text
        assert re.search(r"worth ¥[\d.,]+", page)
        soon = first_expiry <= datetime.now(UTC).date() + timedelta(days=59)
        assert ('id="points-expiring"' in page) == soon
        if soon:
            assert f"expire on {first_expiry.isoformat()}" in page
            assert "到期" in client.get("/me?lang=zh").text

    def test_record_shows_its_calculation(self, client, world):
        login_as(client, world.citizen.token)
        page = client.get(f"/me/records/{world.credited_id}?lang=en").text
        assert "wuhan-metro" in page or "metro" in page
        assert "distance_km" in page
        assert 'id="steps"' in page
        assert "reduction_mg" in page

    def test_the_calculation_speaks_the_readers_language(self, client, world):
        login_as(client, world.citizen.token)
        zh = client.get(f"/me/records/{world.credited_id}?lang=zh").text
        for text in (
            "出行距离",
            "减排量 = 因子 × 出行距离",
            "由 g CO2e 换算为 mg CO2e",
            "四舍六入五成双",
        ):
            assert text in zh
        assert "Reduction = factor" not in zh and "rounded once" not in zh
        en = client.get(f"/me/records/{world.credited_id}?lang=en").text
        for text in ("Trip distance", "Reduction = factor x trip distance", "rounded once"):
            assert text in en
        assert "减排量 = 因子" not in en

    def test_a_refused_record_says_why_in_the_readers_language(self, client, session, world):
        credited = session.get(ActivityRecord, world.credited_id)
        assert credited is not None
        [answer] = activity_service.ingest(
            session,
            world.partner.principal,
            [activity_fx.record(world.puid, start=credited.started_at + timedelta(minutes=5))],
        )
        assert (answer["status"], answer["code"]) == ("rejected", "overlaps_other_record")
        session.flush()
        login_as(client, world.citizen.token)
        zh = client.get(f"/me/records/{answer['record_id']}?lang=zh").text
        assert "你的另一条记录覆盖了同一时段。" in zh and "another record of this" not in zh
        en = client.get(f"/me/records/{answer['record_id']}?lang=en").text
        assert "Another record of yours covers the same time." in en

    def test_history_filters_by_scenario_and_status(self, client, session, world):
        credited = session.get(ActivityRecord, world.credited_id)
        assert credited is not None
        [refused] = activity_service.ingest(  # overlaps the credited trip
            session,
            world.partner.principal,
            [activity_fx.record(world.puid, start=credited.started_at + timedelta(minutes=5))],
        )
        [bus] = activity_service.ingest(
            session,
            world.partner.principal,
            [
                activity_fx.record(
                    world.puid,
                    scenario="bus",
                    start=credited.started_at - timedelta(hours=3),
                    quantities={"distance_km": "5"},
                )
            ],
        )
        session.flush()
        login_as(client, world.citizen.token)
        everything = client.get("/me/records?lang=zh").text
        for rid in (world.credited_id, world.review_id, refused["record_id"], bus["record_id"]):
            assert f'href="/me/records/{rid}"' in everything
        assert 'href="/me/records?scenario=bus"' in everything
        only_refused = client.get("/me/records?status=rejected&lang=zh").text
        assert f'href="/me/records/{refused["record_id"]}"' in only_refused
        assert f'href="/me/records/{world.credited_id}"' not in only_refused
        assert "你的另一条记录覆盖了同一时段。" in only_refused  # the reason, in the list
        only_bus = client.get("/me/records?scenario=bus").text
        assert f'href="/me/records/{bus["record_id"]}"' in only_bus
        assert f'href="/me/records/{world.credited_id}"' not in only_bus
        nothing = client.get("/me/records?scenario=bus&status=review&lang=zh").text
        assert "没有符合条件的记录。" in nothing
        # A hand-edited link with an unknown value shows everything instead of failing.
        odd = client.get("/me/records?status=lost&scenario=teleport")
        assert odd.status_code == 200 and f'href="/me/records/{world.credited_id}"' in odd.text
        api = client.get("/v1/me/records?status=rejected", headers=world.citizen.headers)
        assert [r["id"] for r in api.json()["items"]] == [refused["record_id"]]
        bad = client.get("/v1/me/records?status=lost", headers=world.citizen.headers)
        assert (bad.status_code, bad.json()["code"]) == (422, "unknown_status")

    def test_someone_elses_record_is_not_found(self, client, session, world):
        other = identity_service.citizen_for_phone(session, "13912345678")
        token = identity_service.issue_token(session, identity_service.citizen_principal(other))
        session.flush()
        login_as(client, token)
        page = client.get(f"/me/records/{world.credited_id}")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")

    @pytest.mark.parametrize("bad", ["abc", "-1", "99999999999999999999", "1%00"])
    def test_bad_ids_never_500(self, client, world, bad):
        login_as(client, world.citizen.token)
        for path in (f"/me/records/{bad}", f"/mall/rewards/{bad}"):
            page = client.get(path)
            assert page.status_code in (404, 422), (path, page.status_code)

    def test_redeem_shows_the_code(self, client, session, world):
        login_as(client, world.citizen.token)
        points = incentives_service.points_balance(session, world.citizen.id)
        assert points >= world.reward.price_points
        form = client.get(f"/mall/rewards/{world.reward.id}").text
        key = re.search(r'name="idempotency_key" value="([^"]+)"', form).group(1)
        data = {security.CSRF_FIELD: csrf(client), "quantity": "1", "idempotency_key": key}
        done = client.post(f"/mall/rewards/{world.reward.id}", data=data, follow_redirects=False)
        assert done.status_code == 303, done.text[:1000]
        # the same form submitted twice is one order
        again = client.post(f"/mall/rewards/{world.reward.id}", data=data, follow_redirects=False)
        assert again.status_code == 303
        orders = client.get("/mall/orders").text
        assert orders.count('class="coupon"') == 1

    def test_redeem_errors_are_beside_the_field(self, client, world):
        login_as(client, world.citizen.token)
        data = {security.CSRF_FIELD: csrf(client), "quantity": "99", "idempotency_key": "k1"}
        page = client.post(f"/mall/rewards/{world.reward.id}", data=data)
        assert page.status_code == 422
        assert 'id="e-quantity"' in page.text
        data["quantity"] = "lots"
        page = client.post(f"/mall/rewards/{world.reward.id}", data=data)
        assert page.status_code == 422
        assert 'id="e-quantity"' in page.text

    def test_revoke_a_linked_app(self, client, session, world):
        login_as(client, world.citizen.token)
        binding = identity_service.citizen_bindings(session, world.citizen.id)[0]
        done = client.post(
            f"/me/apps/{binding.id}/revoke",
            data={security.CSRF_FIELD: csrf(client)},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert identity_service.citizen_bindings(session, world.citizen.id)[0].status == "revoked"

    def test_authorize_page_and_consent(self, client, session, world):
        other = identity_fx_citizen(session)
        login_as(client, other.token)
        query = (
            f"partner_id={world.partner.partner_id}&partner_user_id=new-user-1&scenarios=metro"
            "&redirect_uri=https://partner.example/callback&state=xyz"
        )
        page = client.get(f"/authorize?{query}")
        _ok(page)
        data = {
            security.CSRF_FIELD: csrf(client),
            "decision": "allow",
            "partner_id": str(world.partner.partner_id),
            "partner_user_id": "new-user-1",
            "scenarios": "metro",
            "redirect_uri": "https://partner.example/callback",
            "state": "xyz",
        }
        done = client.post("/authorize", data=data, follow_redirects=False)
        assert done.status_code == 303
        assert done.headers["location"].startswith("https://partner.example/callback?code=")
        bad = client.get("/authorize?partner_id=1&redirect_uri=https://evil.example/&scenarios=x")
        assert bad.status_code in (400, 404, 422)

    def test_export_and_delete_with_confirmation(self, client, session, world):
        login_as(client, world.citizen.token)
        export = client.get("/me/privacy/export")
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("application/json")
        token = csrf(client)
        confirm = client.post("/me/privacy/delete", data={security.CSRF_FIELD: token})
        assert confirm.status_code == 200 and 'name="confirm"' in confirm.text
        wrong = client.post(
            "/me/privacy/delete/confirm", data={security.CSRF_FIELD: token, "confirm": "no"}
        )
        assert wrong.status_code == 422 and 'id="e-confirm"' in wrong.text
        done = client.post(
            "/me/privacy/delete/confirm",
            data={security.CSRF_FIELD: token, "confirm": "删除"},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert identity_service.get_citizen(session, world.citizen.id).erased_at is not None

    @pytest.mark.parametrize("path", CITIZEN_PAGES)
    def test_pages_need_login(self, client, path):
        page = client.get(path, follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login?next=")

    def test_staff_session_is_not_a_citizen(self, client, operator):
        login_as(client, operator.token)
        assert client.get("/me", follow_redirects=False).status_code == 303


def identity_fx_citizen(session):  # type: ignore[no-untyped-def]
    from tests.fixtures import identity as identity_fx

    return identity_fx.citizen(session)


class TestLogin:
    def test_citizen_logs_in_with_a_code(self, client, session):
        token = csrf(client)
        page = client.post("/login/code", data={security.CSRF_FIELD: token, "phone": "13800138000"})
        assert page.status_code == 200
        assert 'name="code"' in page.text and 'id="dev-hint"' in page.text
        code = identity_service.last_otp("13800138000")
        wrong = client.post(
            "/login",
            data={
                security.CSRF_FIELD: token,
                "phone": "13800138000",
                "code": "000000" if code != "000000" else "111111",
            },
        )
        assert wrong.status_code == 401 and 'id="e-code"' in wrong.text
        done = client.post(
            "/login",
            data={security.CSRF_FIELD: token, "phone": "13800138000", "code": code, "next": "/me"},
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"] == "/me"
        cookie = done.headers["set-cookie"]
        assert (
            "tanhui_session=" in cookie
            and "HttpOnly" in cookie
            and "samesite=lax" in cookie.lower()
        )

    def test_bad_phone_is_shown_beside_the_field(self, client):
        page = client.post("/login/code", data={security.CSRF_FIELD: csrf(client), "phone": "12"})
        assert page.status_code == 422
        assert 'id="e-phone"' in page.text
        assert (
            "请输入 11 位中国大陆手机号" in page.text
        )  # the code's message, in the page's language

    def test_gateway_failure_is_shown_beside_the_phone(self, client, monkeypatch):
        class Down:
            def send(self, phone: str, code: str) -> None:
                raise TimeoutError("SMS gateway timed out")

        monkeypatch.setattr(identity_service.accounts, "otp_sender", Down())
        page = client.post(
            "/login/code", data={security.CSRF_FIELD: csrf(client), "phone": "13800138001"}
        )
        assert page.status_code == 503
        assert 'id="e-phone"' in page.text and "验证码暂时无法发送" in page.text
        assert 'name="code"' not in page.text  # still on the phone step

    def test_next_cannot_leave_the_site(self, client):
        page = client.get("/login?next=https://evil.example/")
        assert 'value="https://evil.example/"' not in page.text

    def test_staff_login(self, client, operator):
        page = client.post(
            "/console/login",
            data={
                security.CSRF_FIELD: csrf(client),
                "username": operator.username,
                "password": "wrong password",
            },
        )
        assert page.status_code == 401 and 'id="e-password"' in page.text
        from tests.fixtures.identity import PASSWORD

        done = client.post(
            "/console/login",
            data={
                security.CSRF_FIELD: csrf(client),
                "username": operator.username,
                "password": PASSWORD,
            },
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"] == "/console"


class TestConsole:
    @pytest.mark.parametrize("lang", ["zh", "en"])
    def test_every_page_renders(self, client, world: World, lang, operator):
        login_as(client, operator.token)
        for path in CONSOLE_PAGES:
            _ok(client.get(f"{path}?lang={lang}"))

    def test_dashboard_has_charts(self, client, world, operator):
        login_as(client, operator.token)
        page = client.get("/console").text
        assert "<svg" in page

    def test_codes_are_named_in_the_readers_language(self, client, world, operator):
        """Scenarios, regions, reward kinds and statuses are said in words, not as codes."""
        login_as(client, operator.token)
        zh = {
            p: client.get(f"{p}?lang=zh").text
            for p in (
                "/console",
                "/console/factors",
                "/console/methodologies",
                "/console/mall",
                "/console/partners",
            )
        }
        assert "地铁" in zh["/console"]  # the chart's legend
        assert "华北电网" in zh["/console/factors"] and "安徽" in zh["/console/factors"]
        assert "节约用电" in zh["/console/methodologies"] and "武汉" in zh["/console/methodologies"]
        assert "优惠券" in zh["/console/mall"]
        assert "地铁" in zh["/console/partners"] and "有效" in zh["/console/partners"]
        en = client.get("/console/factors?lang=en").text
        assert "North China grid" in en and "华北电网" not in en

    def test_a_partners_feed_shows_its_records_and_refusals(self, client, session, world, reviewer):
        activity_service.ingest(
            session, world.partner.principal, [activity_fx.record("nobody-linked")]
        )
        session.flush()
        login_as(client, reviewer.token)
        listing = client.get("/console/partners?lang=en").text
        assert f'href="/console/partners/{world.partner.partner_id}"' in listing
        page = client.get(f"/console/partners/{world.partner.partner_id}?lang=en")
        _ok(page)
        assert 'id="rejected-total">1<' in page.text
        assert "<code>unbound_user</code>" in page.text and "not linked to a citizen" in page.text
        assert "<svg" in page.text and "In review" in page.text
        zh = client.get(f"/console/partners/{world.partner.partner_id}?lang=zh&days=7").text
        assert "记录被拒绝的原因" in zh and "用户未关联市民" in zh
        assert "<strong>7 天</strong>" in zh
        # An unknown or malformed id is a page saying so; a merchant is turned away.
        assert client.get("/console/partners/999999").status_code == 404
        assert client.get("/console/partners/x?days=abc").status_code == 404
        login_as(client, staff(session, "merchant").token)
        assert client.get(f"/console/partners/{world.partner.partner_id}").status_code == 403

    def test_approve_and_reject(self, client, session, world, reviewer):
        login_as(client, reviewer.token)
        queue = client.get("/console/review").text
        assert f'id="record-{world.review_id}"' in queue
        token = csrf(client)
        no_reason = client.post(
            f"/console/review/{world.review_id}",
            data={security.CSRF_FIELD: token, "decision": "reject", "reason": ""},
        )
        assert no_reason.status_code == 422
        assert f'id="reason-err-{world.review_id}"' in no_reason.text
        done = client.post(
            f"/console/review/{world.review_id}",
            data={security.CSRF_FIELD: token, "decision": "approve"},
            follow_redirects=False,
        )
        assert done.status_code == 303
        records = activity_service.citizen_records(session, world.citizen.id)
        assert {r["id"]: r["status"] for r in records}[world.review_id] == "credited"

    def test_methodology_page_describes_in_the_readers_language(self, client, reviewer):
        login_as(client, reviewer.token)
        zh = client.get("/console/methodologies/shenzhen-metro?lang=zh").text
        assert "乘坐地铁每人每公里的减排量" in zh and "出行距离" in zh
        assert "Reduction per person-km" not in zh
        assert 'href="/v1/methodologies/shenzhen-metro/versions/1.toml"' in zh
        en = client.get("/console/methodologies/shenzhen-metro?lang=en").text
        assert "Reduction per person-km for a metro trip" in en

    def test_reviewer_cannot_upload(self, client, reviewer):
        login_as(client, reviewer.token)
        page = client.post(
            "/console/methodologies/upload",
            data={security.CSRF_FIELD: csrf(client), "toml_text": "id = 'x'"},
        )
        assert page.status_code == 403

    def test_upload_errors_by_line_and_field(self, client, operator):
        login_as(client, operator.token)
        page = client.post(
            "/console/methodologies/upload",
            data={security.CSRF_FIELD: csrf(client), "toml_text": 'id = "x"\nversion = 1\n'},
        )
        assert page.status_code == 422
        assert 'id="upload-errors"' in page.text

    def test_publish_errors_beside_the_field(self, client, operator):
        login_as(client, operator.token)
        page = client.post(
            "/console/methodologies/publish",
            data={
                security.CSRF_FIELD: csrf(client),
                "scenario": "bus",
                "methodology_id": "wuhan-metro",
                "effective_from": "2026-01-01",
            },
        )
        assert page.status_code == 422
        assert 'id="p-mid-error"' in page.text

    def test_ledger_check_runs(self, client, operator):
        login_as(client, operator.token)
        page = client.post("/console/ledger", data={security.CSRF_FIELD: csrf(client)})
        assert page.status_code == 200
        assert 'id="ledger-result"' in page.text

    def test_partner_created_shows_secret_once(self, client, operator):
        login_as(client, operator.token)
        page = client.post(
            "/console/partners",
            data={
                security.CSRF_FIELD: csrf(client),
                "name": "Metro Co",
                "scenarios": "metro",
                "valid_until": "",
                "redirect_uris": "",
            },
        )
        assert page.status_code == 200 and 'id="new-secret"' in page.text
        bad = client.post(
            "/console/partners",
            data={
                security.CSRF_FIELD: csrf(client),
                "name": "X",
                "scenarios": "teleport",
                "valid_until": "soon",
                "redirect_uris": "",
            },
        )
        assert bad.status_code == 422 and 'class="error"' in bad.text

    @pytest.mark.parametrize("path", CONSOLE_PAGES)
    def test_pages_need_staff_login(self, client, path):
        page = client.get(path, follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/console/login?next=")

    def test_citizen_cannot_use_console(self, client, world):
        login_as(client, world.citizen.token)
        assert client.get("/console", follow_redirects=False).status_code == 303


POSTS = [
    "/login/code",
    "/login",
    "/console/login",
    "/mall/rewards/{reward}",
    "/mall/orders/1/cancel",
    "/me/apps/1/revoke",
    "/authorize",
    "/me/privacy/delete",
    "/me/privacy/delete/confirm",
    "/console/review/{review}",
    "/console/review",
    "/console/rules",
    "/console/partners/applications/1",
    "/console/citizens",
    "/partners/apply",
    "/console/methodologies/upload",
    "/console/methodologies/publish",
    "/console/partners",
    "/console/mall/rewards/1/active",
    "/console/ledger",
    "/console/staff",
    "/console/staff/1/active",
    "/console/staff/1/password",
    "/console/staff/1/roles",
    "/console/password",
    "/logout",  # last: it ends the session
]
JUNK = [
    {},
    {
        "quantity": "-1",
        "phone": "x" * 5000,
        "code": "🙂",
        "decision": "maybe",
        "effective_from": "2026-02-30",
        "scenarios": ",,,",
        "confirm": "",
        "active": "2",
        "next": "//evil.example",
        "partner_id": "1e9",
        "toml_text": "[[[",
        "reason": " ",
        "pick_1": "1",
        "pick_x": "1",
        "param": "max_speed_kmh",
        "value": "1e999",
        "effective_on": "0000-00-00",
    },
]


@pytest.mark.parametrize("junk", JUNK)
def test_no_form_post_answers_500(client, world, operator, junk):
    """Whatever a form sends, signed in as a citizen or an operator, the answer is never a 500."""
    for token in (world.citizen.token, operator.token):
        login_as(client, token)
        for path in POSTS:
            url = path.format(reward=world.reward.id, review=world.review_id)
            page = client.post(url, data={security.CSRF_FIELD: csrf(client), **junk})
            assert page.status_code < 500, (url, page.status_code, page.text[:500])


def test_operator_rotates_and_revokes_a_partner_key(client, session, world, operator):
    login_as(client, operator.token)
    rotated = client.post(
        f"/console/partners/{world.partner.partner_id}/rotate",
        data={security.CSRF_FIELD: csrf(client)},
    )
    assert rotated.status_code == 200 and 'id="new-secret"' in rotated.text
    new_key = re.search(r"<dt>[^<]+</dt><dd><code>([^<]+)</code></dd>", rotated.text).group(1)
    done = client.post(
        f"/console/partners/keys/{new_key}/revoke",
        data={security.CSRF_FIELD: csrf(client)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    keys = identity_service.partner_keys(session, world.partner.partner_id)
    assert any(k.key_id == new_key and k.revoked_at is not None for k in keys)


def test_operator_lists_a_reward_with_codes(client, session, operator):
    from tanhui.mall import service as mall_service

    merchant = identity_service.create_organisation(session, None, name="商户乙", kind="merchant")
    session.flush()
    login_as(client, operator.token)
    data = {
        security.CSRF_FIELD: csrf(client),
        "category": "green_travel",
        "kind": "coupon",
        "title_zh": "公交券",
        "title_en": "Bus ride",
        "price_points": "20",
        "face_value": "2.5",
        "stock": "",
        "codes": "3",
        "merchant_org_id": str(merchant.id),
    }
    bad = client.post("/console/mall/rewards", data={**data, "face_value": "2.555"})
    assert bad.status_code == 422 and 'id="e-face_value"' in bad.text
    # A form's own error is said in the page's language, not appended in English.
    assert "金额以元为单位，最多两位小数" in bad.text
    assert "at most 2 decimals" not in bad.text
    english = client.post("/console/mall/rewards?lang=en", data={**data, "price_points": "0"})
    assert english.status_code == 422 and "a whole number of points above 0" in english.text
    done = client.post("/console/mall/rewards", data=data, follow_redirects=False)
    assert done.status_code == 303
    reward = next(r for r in mall_service.list_rewards(session) if r.title_zh == "公交券")
    assert reward.face_value_fen == 250
    assert mall_service.available_codes(session, reward.id) == 3


def test_merchant_writes_a_code_off_at_the_till_once(client, session):
    from tanhui.mall import service as mall_service
    from tests.fixtures.identity import citizen
    from tests.fixtures.incentives import give_points
    from tests.fixtures.mall import merchant, reward

    shop = merchant(session)
    coupon = reward(session, shop)
    buyer = citizen(session)
    give_points(session, buyer.id, 100)
    order = mall_service.place_order(
        session, buyer.principal, reward_id=coupon.id, idempotency_key="till-1"
    )
    code = order.codes[0]
    session.flush()
    login_as(client, shop.user.token)

    empty = client.post("/console/mall/write-off?lang=en", data={security.CSRF_FIELD: csrf(client)})
    assert empty.status_code == 422 and 'id="e-code"' in empty.text
    done = client.post(
        "/console/mall/write-off?lang=en", data={security.CSRF_FIELD: csrf(client), "code": code}
    )
    assert done.status_code == 200 and 'id="written-off"' in done.text
    twice = client.post(
        "/console/mall/write-off?lang=zh", data={security.CSRF_FIELD: csrf(client), "code": code}
    )
    assert twice.status_code == 409
    assert "此券码已核销" in twice.text and 'id="e-code"' in twice.text
