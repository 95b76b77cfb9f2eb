"""The console's staff page: operator_admin only; create, change roles, deactivate, reactivate, reset
a password, with the service's refusals beside the form that caused them. And every staff user's own
password page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tanhui.identity import service as identity_service
from tanhui.identity.models import Staff
from tanhui.web import security
from tests.fixtures.identity import PASSWORD
from tests.web.conftest import csrf, login_as, staff

NEW_PASSWORD = "a brand new secret"


def _id(session, username: str) -> int:  # type: ignore[no-untyped-def]
    return identity_service.get_staff_by_username(session, username).id


def _logged_in(client, token: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether the console still takes this session cookie (a dead one is sent to the login)."""
    login_as(client, token)
    return client.get("/console", follow_redirects=False).status_code == 200


class TestAccess:
    @pytest.mark.parametrize("lang", ["zh", "en"])
    def test_operator_sees_everyone_with_roles_and_status(self, client, session, operator, lang):
        other = staff(session, "reviewer", "buyer")
        identity_service.update_staff(session, None, _id(session, other.username), active=False)
        session.flush()
        login_as(client, operator.token)
        page = client.get(f"/console/staff?lang={lang}")
        assert page.status_code == 200, page.text[:2000]
        assert operator.username in page.text and other.username in page.text
        row = page.text.split(f'id="staff-{_id(session, other.username)}"')[1].split("</tr>")[0]
        if lang == "zh":
            assert "审核员" in row and "买方" in row and "已停用" in row and "重新启用" in row
        else:
            assert "Reviewer" in row and "Deactivated" in row and "Reactivate" in row
        # No button to deactivate oneself.
        own = page.text.split(f'id="staff-{_id(session, operator.username)}"')[1].split("</tr>")[0]
        assert "/active" not in own

    def test_nav_link_for_operator_admins_only(self, client, operator, reviewer):
        login_as(client, operator.token)
        assert 'href="/console/staff"' in client.get("/console").text
        login_as(client, reviewer.token)
        assert 'href="/console/staff"' not in client.get("/console").text

    def test_others_are_refused(self, client, session, reviewer):
        target = staff(session, "merchant")
        session.flush()
        login_as(client, reviewer.token)
        assert client.get("/console/staff").status_code == 403
        token = csrf(client)
        for path, data in [
            ("/console/staff", {"username": "x1", "password": NEW_PASSWORD, "role_buyer": "1"}),
            (f"/console/staff/{_id(session, target.username)}/active", {"active": "0"}),
            (f"/console/staff/{_id(session, target.username)}/password", {"password": "x" * 9}),
            (f"/console/staff/{_id(session, target.username)}/roles", {"role_buyer": "1"}),
        ]:
            page = client.post(path, data={security.CSRF_FIELD: token, **data})
            assert page.status_code == 403 and "missing_role" in page.text, path
        assert _logged_in(client, target.token)

    def test_needs_a_staff_login(self, client):
        page = client.get("/console/staff", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/console/login?next=")


class TestCreate:
    def test_create_then_log_in(self, client, session, operator):
        org = identity_service.create_organisation(session, None, name="商户丁", kind="merchant")
        session.flush()
        login_as(client, operator.token)
        done = client.post(
            "/console/staff",
            data={
                security.CSRF_FIELD: csrf(client),
                "username": "shop.ding",
                "display_name": "商户 丁",
                "password": NEW_PASSWORD,
                "role_merchant": "1",
                "organisation_id": str(org.id),
            },
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text[:2000]
        view = identity_service.staff_view(session, _id(session, "shop.ding"))
        assert (view.roles, view.organisation_id, view.display_name) == (
            ["merchant"],
            org.id,
            "商户 丁",
        )
        principal, _ = identity_service.login_staff(
            session, username="shop.ding", password=NEW_PASSWORD
        )
        assert principal.organisation_id == org.id
        page = client.get(done.headers["location"])
        assert "shop.ding" in page.text and 'class="flash ok"' in page.text

    @pytest.mark.parametrize(
        ("changes", "status", "where", "text"),
        [
            ({"role_merchant": ""}, 422, 'id="e-roles"', "请至少选择一个角色"),
            ({"password": "short"}, 422, 'id="e-password"', "密码至少需要 8 个字符"),
            ({"username": "a b"}, 422, 'id="e-username"', "请使用 2-64 个字母"),
            ({"organisation_id": "999999999"}, 404, 'id="e-organisation_id"', "该机构不存在"),
            ({"organisation_id": "x"}, 422, 'id="e-organisation_id"', "该机构不存在"),
            ({"display_name": "a\x00b"}, 422, 'id="e-display_name"', "单行名称"),
        ],
    )
    def test_errors_beside_the_field(self, client, operator, changes, status, where, text):
        login_as(client, operator.token)
        data = {
            security.CSRF_FIELD: csrf(client),
            "username": "new.user",
            "display_name": "",
            "password": NEW_PASSWORD,
            "role_merchant": "1",
            "organisation_id": "",
        }
        page = client.post("/console/staff", data={**data, **changes})
        assert page.status_code == status, page.text[:2000]
        assert where in page.text and text in page.text
        # What was typed stays, except the password.
        assert NEW_PASSWORD not in page.text
        if changes.get("role_merchant") != "":
            assert 'name="role_merchant" value="1" checked' in page.text

    def test_the_form_sent_twice_makes_one_user(self, client, session, operator):
        login_as(client, operator.token)
        page = client.get("/console/staff")
        key = page.text.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
        assert len(key) >= 16
        data = {
            security.CSRF_FIELD: csrf(client),
            "idempotency_key": key,
            "username": "double.click",
            "password": NEW_PASSWORD,
            "role_buyer": "1",
        }
        first = client.post("/console/staff", data=data, follow_redirects=False)
        again = client.post("/console/staff", data=data, follow_redirects=False)
        assert (first.status_code, again.status_code) == (303, 303), again.text[:2000]
        assert (
            len(session.scalars(select(Staff).where(Staff.username == "double.click")).all()) == 1
        )
        # The next visit to the page brings a fresh key.
        assert key not in client.get("/console/staff").text

    def test_username_taken(self, client, operator):
        login_as(client, operator.token)
        page = client.post(
            "/console/staff?lang=en",
            data={
                security.CSRF_FIELD: csrf(client),
                "username": operator.username,
                "password": NEW_PASSWORD,
                "role_buyer": "1",
            },
        )
        assert page.status_code == 409
        assert 'id="e-username"' in page.text and "This username is taken." in page.text


class TestRowActions:
    def test_deactivate_ends_the_session_and_reactivate_lets_them_back(
        self, client, session, operator
    ):
        target = staff(session, "reviewer")
        session.flush()
        sid = _id(session, target.username)
        assert _logged_in(client, target.token)
        login_as(client, operator.token)
        done = client.post(
            f"/console/staff/{sid}/active",
            data={security.CSRF_FIELD: csrf(client), "active": "0"},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert "已停用" in client.get(done.headers["location"]).text
        assert not _logged_in(client, target.token)
        login_as(client, operator.token)
        back = client.post(
            f"/console/staff/{sid}/active",
            data={security.CSRF_FIELD: csrf(client), "active": "1"},
            follow_redirects=False,
        )
        assert back.status_code == 303
        identity_service.login_staff(session, username=target.username, password=PASSWORD)

    def test_refusals_are_shown_in_the_row(self, client, session, operator):
        me = _id(session, operator.username)
        login_as(client, operator.token)
        token = csrf(client)
        own = client.post(
            f"/console/staff/{me}/active", data={security.CSRF_FIELD: token, "active": "0"}
        )
        assert own.status_code == 409
        assert f'id="row-err-{me}"' in own.text and "不能停用自己的账号" in own.text
        junk = client.post(
            f"/console/staff/{me}/active", data={security.CSRF_FIELD: token, "active": "2"}
        )
        assert junk.status_code == 422 and f'id="row-err-{me}"' in junk.text
        assert _logged_in(client, operator.token)

    @pytest.mark.parametrize("staff_id", ["999999999", "abc", "1e9", str(2**70)])
    def test_unknown_staff_is_a_page_not_a_500(self, client, operator, staff_id):
        login_as(client, operator.token)
        token = csrf(client)
        for action, data in (
            ("active", {"active": "0"}),
            ("password", {"password": "x" * 9}),
            ("roles", {"role_buyer": "1"}),
        ):
            page = client.post(
                f"/console/staff/{staff_id}/{action}", data={security.CSRF_FIELD: token, **data}
            )
            assert page.status_code == 404 and "staff_not_found" in page.text

    def test_reset_password(self, client, session, operator):
        target = staff(session, "verifier")
        session.flush()
        sid = _id(session, target.username)
        login_as(client, operator.token)
        weak = client.post(
            f"/console/staff/{sid}/password",
            data={security.CSRF_FIELD: csrf(client), "password": "short"},
        )
        assert weak.status_code == 422 and f'id="password-err-{sid}"' in weak.text
        assert _logged_in(client, target.token)
        login_as(client, operator.token)
        done = client.post(
            f"/console/staff/{sid}/password",
            data={security.CSRF_FIELD: csrf(client), "password": NEW_PASSWORD},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert not _logged_in(client, target.token)
        login = client.post(
            "/console/login",
            data={
                security.CSRF_FIELD: csrf(client),
                "username": target.username,
                "password": NEW_PASSWORD,
            },
            follow_redirects=False,
        )
        assert login.status_code == 303 and login.headers["location"] == "/console"


def _row(page_text: str, sid: int) -> str:
    return page_text.split(f'id="staff-{sid}"')[1].split("</tr>")[0]


class TestRoles:
    def test_change_roles_shows_them_in_the_row(self, client, session, operator):
        target = staff(session, "reviewer")
        session.flush()
        sid = _id(session, target.username)
        login_as(client, operator.token)
        before = _row(client.get("/console/staff").text, sid)
        assert 'name="role_reviewer" value="1" checked' in before
        assert 'name="role_merchant" value="1" checked' not in before
        done = client.post(
            f"/console/staff/{sid}/roles",
            data={security.CSRF_FIELD: csrf(client), "role_merchant": "1", "role_reviewer": "1"},
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text[:2000]
        assert identity_service.staff_view(session, sid).roles == ["merchant", "reviewer"]
        page = client.get(done.headers["location"])
        assert 'class="flash ok"' in page.text and "角色已保存" in page.text
        row = _row(page.text, sid)
        assert 'title="merchant"' in row and 'title="reviewer"' in row
        assert 'name="role_merchant" value="1" checked' in row

    def test_no_roles_is_refused_in_the_row(self, client, session, operator):
        target = staff(session, "reviewer")
        session.flush()
        sid = _id(session, target.username)
        login_as(client, operator.token)
        page = client.post(f"/console/staff/{sid}/roles", data={security.CSRF_FIELD: csrf(client)})
        assert page.status_code == 422, page.text[:2000]
        row = _row(page.text, sid)
        assert f'id="roles-err-{sid}"' in row and "请至少选择一个角色" in row
        assert identity_service.staff_view(session, sid).roles == ["reviewer"]

    def test_last_operator_admin_keeps_the_role(self, client, session, operator):
        me = _id(session, operator.username)
        # Any other active operator admins (from earlier data) step aside for this test.
        for other in identity_service.list_staff(session, None):
            if other.id != me and other.active and "operator_admin" in other.roles:
                identity_service.update_staff(session, None, other.id, active=False)
        session.flush()
        login_as(client, operator.token)
        page = client.post(
            f"/console/staff/{me}/roles?lang=en",
            data={security.CSRF_FIELD: csrf(client), "role_reviewer": "1"},
        )
        assert page.status_code == 409, page.text[:2000]
        row = _row(page.text, me)
        assert f'id="roles-err-{me}"' in row and "last active operator admin" in row
        assert identity_service.staff_view(session, me).roles == ["operator_admin"]
        assert _logged_in(client, operator.token)


class TestOwnPassword:
    def _change(self, client, current: str, new: str = NEW_PASSWORD):  # type: ignore[no-untyped-def]
        return client.post(
            "/console/password",
            data={
                security.CSRF_FIELD: csrf(client),
                "current_password": current,
                "new_password": new,
            },
            follow_redirects=False,
        )

    def test_linked_for_every_staff_user(self, client, reviewer):
        login_as(client, reviewer.token)
        assert 'href="/console/password"' in client.get("/console").text
        page = client.get("/console/password?lang=en")
        assert page.status_code == 200 and 'id="f-current_password"' in page.text

    def test_needs_a_staff_login(self, client):
        page = client.get("/console/password", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/console/login?next=")

    def test_wrong_current_password_is_shown_and_counted(self, client, session, reviewer):
        sid = _id(session, reviewer.username)
        login_as(client, reviewer.token)
        page = self._change(client, "not my password")
        assert page.status_code == 403, page.text[:2000]
        assert 'id="e-current_password"' in page.text and "当前密码不正确" in page.text
        assert NEW_PASSWORD not in page.text and "not my password" not in page.text
        failed = session.scalar(select(Staff.failed_logins).where(Staff.id == sid))
        assert failed == 1
        weak = self._change(client, PASSWORD, "short")
        assert weak.status_code == 422 and 'id="e-new_password"' in weak.text
        identity_service.login_staff(session, username=reviewer.username, password=PASSWORD)

    def test_change_keeps_this_session_and_ends_the_others(self, client, session, reviewer):
        other = client.post(
            "/v1/auth/staff/login",
            json={"username": reviewer.username, "password": PASSWORD},
        )
        assert other.status_code == 200, other.text
        bearer = {"Authorization": f"Bearer {other.json()['token']}"}
        assert client.get("/v1/me", headers=bearer).status_code == 200
        login_as(client, reviewer.token)
        done = self._change(client, PASSWORD)
        assert done.status_code == 303, done.text[:2000]
        page = client.get(done.headers["location"])
        assert page.status_code == 200 and 'class="flash ok"' in page.text
        assert _logged_in(client, reviewer.token)
        assert client.get("/v1/me", headers=bearer).status_code == 401
        identity_service.login_staff(session, username=reviewer.username, password=NEW_PASSWORD)
        with pytest.raises(identity_service.InvalidCredentials):
            identity_service.login_staff(session, username=reviewer.username, password=PASSWORD)
