"""Staff accounts: list, create, roles, deactivation, passwords, and the last operator_admin guard."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tanhui.identity import service as identity_service
from tanhui.identity.models import Staff
from tanhui.identity.service import accounts
from tanhui.kit.db import create_db_engine, make_session_factory, session_scope
from tanhui.kit.errors import Forbidden, InvalidInput, TanhuiError
from tests.fixtures import identity as f
from tests.fixtures.locks import commit_once_the_other_waits

NEW_PASSWORD = "a brand new secret"


def _login(client, username: str, password: str = f.PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/v1/auth/staff/login", json={"username": username, "password": password})


class TestList:
    def test_rows_have_roles_organisation_status_and_last_login(self, session, client):
        org = identity_service.create_organisation(
            session, None, name="核查机构甲", kind="verifier"
        )
        admin = f.staff(session)
        verifier = f.staff(session, "verifier", "buyer", organisation_id=org.id)
        never = identity_service.create_staff(
            session, None, username="never.logged", password=f.PASSWORD, roles=["reviewer"]
        )
        session.flush()
        r = client.get("/v1/staff", headers=f.auth(admin.token))
        assert r.status_code == 200, r.text
        rows = {row["username"]: row for row in r.json()}
        row = rows[verifier.username]
        assert row["id"] == verifier.principal.id
        assert row["roles"] == ["buyer", "verifier"]
        assert (row["organisation_id"], row["organisation_name"]) == (org.id, "核查机构甲")
        assert row["active"] is True and row["created_at"] and row["last_login_at"]
        assert row["locked_until"] is None
        assert rows["never.logged"]["id"] == never.id
        assert rows["never.logged"]["last_login_at"] is None
        assert rows["never.logged"]["display_name"] == "never.logged"
        assert all("password" not in key for key in row)

    def test_service_needs_an_admin(self, session):
        reviewer = f.staff(session, "reviewer")
        with pytest.raises(Forbidden):
            identity_service.list_staff(session, reviewer.principal)
        assert identity_service.list_staff(session, None)


class TestPermissions:
    def test_non_admin_gets_403_everywhere(self, session, client):
        reviewer = f.staff(session, "reviewer")
        target = f.staff(session, "merchant")
        session.flush()
        sid = target.principal.id
        headers = f.auth(reviewer.token)
        calls = [
            client.get("/v1/staff", headers=headers),
            client.post(
                "/v1/staff",
                json={"username": "x1", "password": NEW_PASSWORD, "roles": ["reviewer"]},
                headers=headers,
            ),
            client.patch(f"/v1/staff/{sid}", json={"active": False}, headers=headers),
            client.post(
                f"/v1/staff/{sid}/password", json={"password": NEW_PASSWORD}, headers=headers
            ),
        ]
        for r in calls:
            assert (r.status_code, r.json()["code"]) == (403, "missing_role"), r.text
        assert _login(client, target.username).status_code == 200

    def test_anonymous_gets_401(self, client):
        assert client.get("/v1/staff").status_code == 401
        assert client.patch("/v1/staff/1", json={"active": False}).status_code == 401

    def test_citizen_cannot_change_a_staff_password(self, session, client):
        citizen = f.citizen(session)
        r = client.post(
            "/v1/me/password",
            json={"current_password": "x" * 8, "new_password": NEW_PASSWORD},
            headers=citizen.headers,
        )
        assert (r.status_code, r.json()["code"]) == (403, "staff_only")


class TestCreate:
    def test_created_user_can_log_in(self, session, client):
        admin = f.staff(session)
        session.flush()
        r = client.post(
            "/v1/staff",
            json={
                "username": "reviewer.wang",
                "password": NEW_PASSWORD,
                "roles": ["reviewer"],
                "display_name": "审核员 王",
            },
            headers=f.auth(admin.token),
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["username"], body["display_name"], body["roles"]) == (
            "reviewer.wang",
            "审核员 王",
            ["reviewer"],
        )
        assert body["active"] is True and body["last_login_at"] is None
        login = _login(client, "reviewer.wang", NEW_PASSWORD)
        assert login.json()["principal"]["roles"] == ["reviewer"]

    @pytest.mark.parametrize(
        ("changes", "status", "code", "field"),
        [
            ({"admin": True}, 422, "invalid_input", "admin"),
            ({"roles": []}, 422, "invalid_input", "roles"),
            ({"roles": ["god"]}, 422, "unknown_role", "roles"),
            ({"password": "short"}, 422, "weak_password", "password"),
            ({"password": "x" * 257}, 422, "invalid_input", "password"),
            ({"username": "a b"}, 422, "invalid_username", "username"),
            ({"display_name": "nul\x00name"}, 422, "invalid_display_name", "display_name"),
            ({"display_name": "   "}, 422, "invalid_display_name", "display_name"),
            ({"organisation_id": 10**12}, 404, "organisation_not_found", "organisation_id"),
            ({"organisation_id": 0}, 422, "invalid_input", "organisation_id"),
        ],
    )
    def test_bad_input_is_a_problem(self, session, client, changes, status, code, field):
        admin = f.staff(session)
        session.flush()
        body = {"username": "new.user", "password": NEW_PASSWORD, "roles": ["reviewer"]}
        r = client.post("/v1/staff", json={**body, **changes}, headers=f.auth(admin.token))
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (status, code, field)
        assert _login(client, "new.user", NEW_PASSWORD).status_code == 401

    def test_username_taken(self, session, client):
        admin = f.staff(session)
        session.flush()
        body = {"username": admin.username, "password": NEW_PASSWORD, "roles": ["buyer"]}
        r = client.post("/v1/staff", json=body, headers=f.auth(admin.token))
        assert (r.status_code, r.json()["code"]) == (409, "username_taken")


class TestCreateRetried:
    """With an Idempotency-Key, a retry (the answer was lost) gets the user the first request made."""

    BODY: dict[str, Any] = {  # noqa: RUF012 - read only
        "username": "buyer.li",
        "password": NEW_PASSWORD,
        "roles": ["buyer"],
        "display_name": "采购 李",
    }

    def _create(self, client, admin, body, key="staff-create-1"):  # type: ignore[no-untyped-def]
        headers = {**f.auth(admin.token), "Idempotency-Key": key}
        return client.post("/v1/staff", json=body, headers=headers)

    def test_the_same_request_again_returns_the_same_user(self, session, client):
        admin = f.staff(session)
        session.flush()
        first = self._create(client, admin, self.BODY)
        again = self._create(client, admin, self.BODY)
        assert (first.status_code, again.status_code) == (201, 201), again.text
        assert again.json() == first.json()
        users = session.scalars(select(Staff).where(Staff.username == "buyer.li")).all()
        assert len(users) == 1 and users[0].idempotency_key == "staff-create-1"
        # Without the key, the same body is a second creation: the username is taken.
        plain = client.post("/v1/staff", json=self.BODY, headers=f.auth(admin.token))
        assert (plain.status_code, plain.json()["code"]) == (409, "username_taken")

    @pytest.mark.parametrize(
        "changes",
        [
            {"roles": ["buyer", "reviewer"]},
            {"display_name": "采购 张"},
            {"password": "another secret 1"},
            {"username": "buyer.zhang"},
        ],
    )
    def test_another_request_under_the_key_is_refused(self, session, client, changes):
        admin = f.staff(session)
        session.flush()
        assert self._create(client, admin, self.BODY).status_code == 201
        other = self._create(client, admin, {**self.BODY, **changes})
        assert (other.status_code, other.json()["code"], other.json()["field"]) == (
            409,
            "idempotency_conflict",
            "idempotency_key",
        )
        assert _login(client, "buyer.zhang", NEW_PASSWORD).status_code == 401
        assert _login(client, "buyer.li", NEW_PASSWORD).status_code == 200

    def test_a_failed_request_does_not_spend_the_key(self, session, client):
        admin = f.staff(session)
        session.flush()
        weak = self._create(client, admin, {**self.BODY, "password": "short"})
        assert weak.status_code == 422
        assert self._create(client, admin, self.BODY).status_code == 201

    @pytest.mark.parametrize("key", ["", "k" * 201])
    def test_a_malformed_key_is_a_problem(self, session, client, key):
        admin = f.staff(session)
        session.flush()
        r = self._create(client, admin, self.BODY, key=key)
        assert (r.status_code, r.json()["field"]) == (422, "Idempotency-Key")
        assert _login(client, "buyer.li", NEW_PASSWORD).status_code == 401


class TestUpdate:
    def test_roles_are_replaced_and_apply_to_live_sessions(self, session, client):
        admin = f.staff(session)
        user = f.staff(session, "reviewer", "merchant")
        session.flush()
        r = client.patch(
            f"/v1/staff/{user.principal.id}",
            json={"roles": ["buyer", "merchant"], "display_name": "  买方 李 "},
            headers=f.auth(admin.token),
        )
        assert r.status_code == 200, r.text
        assert (r.json()["roles"], r.json()["display_name"]) == (["buyer", "merchant"], "买方 李")
        me = client.get("/v1/me", headers=f.auth(user.token)).json()["principal"]
        assert me["roles"] == ["buyer", "merchant"]

    def test_empty_body_changes_nothing(self, session, client):
        admin = f.staff(session)
        user = f.staff(session, "reviewer")
        session.flush()
        r = client.patch(f"/v1/staff/{user.principal.id}", json={}, headers=f.auth(admin.token))
        assert r.status_code == 200 and r.json()["roles"] == ["reviewer"]

    @pytest.mark.parametrize(
        ("body", "code", "field"),
        [
            ({"roles": []}, "no_roles", "roles"),
            ({"roles": ["reviewer", "god"]}, "unknown_role", "roles"),
            ({"display_name": ""}, "invalid_display_name", "display_name"),
            ({"display_name": "x" * 101}, "invalid_input", "display_name"),
            ({"active": "maybe"}, "invalid_input", "active"),
            ({"username": "renamed"}, "invalid_input", "username"),
        ],
    )
    def test_bad_input_changes_nothing(self, session, client, body, code, field):
        admin = f.staff(session)
        user = f.staff(session, "reviewer")
        session.flush()
        r = client.patch(f"/v1/staff/{user.principal.id}", json=body, headers=f.auth(admin.token))
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (422, code, field)
        assert identity_service.staff_view(session, user.principal.id).roles == ["reviewer"]

    @pytest.mark.parametrize("staff_id", ["999999999", str(2**63), "abc"])
    def test_unknown_staff(self, session, client, staff_id):
        admin = f.staff(session)
        session.flush()
        r = client.patch(
            f"/v1/staff/{staff_id}", json={"active": False}, headers=f.auth(admin.token)
        )
        assert 400 <= r.status_code < 500
        if staff_id == "999999999":
            assert (r.status_code, r.json()["code"]) == (404, "staff_not_found")

    def test_unknown_username(self, session):
        with pytest.raises(identity_service.StaffNotFound) as e:
            identity_service.get_staff_by_username(session, "ghost")
        assert (e.value.code, e.value.field) == ("staff_not_found", "username")


class TestDeactivation:
    def test_a_live_token_stops_working_at_once(self, session, client):
        admin = f.staff(session)
        user = f.staff(session, "reviewer")
        session.flush()
        assert client.get("/v1/me", headers=f.auth(user.token)).status_code == 200
        r = client.patch(
            f"/v1/staff/{user.principal.id}", json={"active": False}, headers=f.auth(admin.token)
        )
        assert r.status_code == 200 and r.json()["active"] is False
        gone = client.get("/v1/me", headers=f.auth(user.token))
        assert (gone.status_code, gone.json()["code"]) == (401, "invalid_token")
        assert _login(client, user.username).json()["code"] == "invalid_credentials"

    def test_reactivation_allows_login_again_but_not_the_old_token(self, session, client):
        admin = f.staff(session)
        user = f.staff(session, "reviewer")
        session.flush()
        url, headers = f"/v1/staff/{user.principal.id}", f.auth(admin.token)
        assert client.patch(url, json={"active": False}, headers=headers).status_code == 200
        back = client.patch(url, json={"active": True}, headers=headers)
        assert back.status_code == 200 and back.json()["active"] is True
        login = _login(client, user.username)
        assert login.status_code == 200
        assert client.get("/v1/me", headers=f.auth(login.json()["token"])).status_code == 200
        assert client.get("/v1/me", headers=f.auth(user.token)).status_code == 401

    def test_nobody_deactivates_themself(self, session, client):
        admin = f.staff(session)
        f.staff(session)  # another admin: the refusal is not the last-admin guard
        session.flush()
        r = client.patch(
            f"/v1/staff/{admin.principal.id}", json={"active": False}, headers=f.auth(admin.token)
        )
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (
            409,
            "self_deactivation",
            "active",
        )
        assert client.get("/v1/me", headers=f.auth(admin.token)).status_code == 200

    def test_the_last_operator_admin_stays(self, session, client):
        first = f.staff(session)
        second = f.staff(session, "operator_admin", "reviewer")
        session.flush()
        headers = f.auth(first.token)
        # Two admins: one may go.
        r = client.patch(
            f"/v1/staff/{second.principal.id}", json={"active": False}, headers=headers
        )
        assert r.status_code == 200
        # Now `first` is the last: they can neither lose the role nor be deactivated.
        demote = client.patch(
            f"/v1/staff/{first.principal.id}", json={"roles": ["reviewer"]}, headers=headers
        )
        assert (demote.status_code, demote.json()["code"], demote.json()["field"]) == (
            409,
            "last_operator_admin",
            "roles",
        )
        with pytest.raises(identity_service.LastOperatorAdmin) as e:
            identity_service.update_staff(session, None, first.principal.id, active=False)
        assert e.value.field == "active"
        assert client.get("/v1/me", headers=headers).json()["principal"]["roles"] == [
            "operator_admin"
        ]
        # An inactive admin does not count, and adding a role to the last one is fine.
        view = identity_service.update_staff(
            session, None, first.principal.id, roles=["operator_admin", "buyer"]
        )
        assert view.roles == ["buyer", "operator_admin"]
        # Reactivating the second admin lets the first step down.
        identity_service.update_staff(session, None, second.principal.id, active=True)
        view = identity_service.update_staff(session, None, first.principal.id, roles=["buyer"])
        assert view.roles == ["buyer"]

    def test_non_admins_are_not_guarded(self, session):
        f.staff(session)
        user = f.staff(session, "reviewer")
        assert not identity_service.update_staff(
            session, None, user.principal.id, active=False
        ).active


class TestPasswordReset:
    def test_reset_ends_sessions_and_the_new_password_logs_in(self, session, client):
        admin = f.staff(session)
        user = f.staff(session, "reviewer")
        session.flush()
        r = client.post(
            f"/v1/staff/{user.principal.id}/password",
            json={"password": NEW_PASSWORD},
            headers=f.auth(admin.token),
        )
        assert r.status_code == 204, r.text
        assert client.get("/v1/me", headers=f.auth(user.token)).status_code == 401
        assert _login(client, user.username).status_code == 401
        assert _login(client, user.username, NEW_PASSWORD).status_code == 200

    def test_reset_lifts_a_login_lock(self, session, client):
        user = f.staff(session, "reviewer")
        session.flush()
        for _ in range(accounts.STAFF_MAX_FAILURES):
            _login(client, user.username, "wrong guess")
        assert _login(client, user.username).json()["code"] == "login_locked"
        identity_service.reset_staff_password(
            session, None, user.principal.id, password=NEW_PASSWORD
        )
        session.flush()
        assert _login(client, user.username, NEW_PASSWORD).status_code == 200

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"password": "short"}, "weak_password"),
            ({"password": NEW_PASSWORD, "extra": 1}, "invalid_input"),
            ({}, "invalid_input"),
        ],
    )
    def test_bad_input_changes_nothing(self, session, client, body, code):
        admin = f.staff(session)
        user = f.staff(session, "reviewer")
        session.flush()
        r = client.post(
            f"/v1/staff/{user.principal.id}/password", json=body, headers=f.auth(admin.token)
        )
        assert (r.status_code, r.json()["code"]) == (422, code)
        assert client.get("/v1/me", headers=f.auth(user.token)).status_code == 200

    def test_unknown_staff(self, session):
        with pytest.raises(identity_service.StaffNotFound):
            identity_service.reset_staff_password(session, None, 987654321, password=NEW_PASSWORD)


class TestOwnPassword:
    def test_needs_the_current_password_and_keeps_this_session_only(self, session, client):
        user = f.staff(session, "reviewer")
        _, other_token = identity_service.login_staff(
            session, username=user.username, password=f.PASSWORD
        )
        session.flush()
        headers = f.auth(user.token)
        wrong = client.post(
            "/v1/me/password",
            json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
            headers=headers,
        )
        assert (wrong.status_code, wrong.json()["code"], wrong.json()["field"]) == (
            403,
            "wrong_password",
            "current_password",
        )
        assert _login(client, user.username, NEW_PASSWORD).status_code == 401
        right = client.post(
            "/v1/me/password",
            json={"current_password": f.PASSWORD, "new_password": NEW_PASSWORD},
            headers=headers,
        )
        assert right.status_code == 204, right.text
        assert client.get("/v1/me", headers=headers).status_code == 200
        assert client.get("/v1/me", headers=f.auth(other_token)).status_code == 401
        assert _login(client, user.username).status_code == 401
        assert _login(client, user.username, NEW_PASSWORD).status_code == 200

    def test_wrong_current_passwords_count_towards_the_lock(self, session, client):
        user = f.staff(session, "reviewer")
        session.flush()
        body = {"current_password": "guess", "new_password": NEW_PASSWORD}
        for _ in range(accounts.STAFF_MAX_FAILURES):
            r = client.post("/v1/me/password", json=body, headers=f.auth(user.token))
            assert r.json()["code"] == "wrong_password"
        body["current_password"] = f.PASSWORD
        locked = client.post("/v1/me/password", json=body, headers=f.auth(user.token))
        assert (locked.status_code, locked.json()["code"]) == (429, "login_locked")
        assert _login(client, user.username).json()["code"] == "login_locked"

    def test_weak_new_password(self, session, client):
        user = f.staff(session, "reviewer")
        session.flush()
        r = client.post(
            "/v1/me/password",
            json={"current_password": f.PASSWORD, "new_password": "short"},
            headers=f.auth(user.token),
        )
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (
            422,
            "weak_password",
            "new_password",
        )

    def test_service_refuses_citizens(self, session):
        citizen = f.citizen(session)
        with pytest.raises(Forbidden):
            identity_service.change_own_password(
                session, citizen.principal, current_password="x", new_password=NEW_PASSWORD
            )


class TestChecks:
    def test_password_is_argon2_after_a_reset(self, session):
        user = f.staff(session, "reviewer")
        identity_service.reset_staff_password(
            session, None, user.principal.id, password=NEW_PASSWORD
        )
        stored = session.scalar(select(Staff.password_hash).where(Staff.id == user.principal.id))
        assert stored.startswith("$argon2id$") and NEW_PASSWORD not in stored

    def test_too_long_password(self, session):
        with pytest.raises(InvalidInput) as e:
            identity_service.create_staff(
                session, None, username="longpw", password="x" * 257, roles=["buyer"]
            )
        assert e.value.code == "password_too_long"


# --- concurrency (PostgreSQL) -------------------------------------------------------------------
_CHANGES: dict[str, dict[str, Any]] = {
    "deactivate": {"active": False},
    "demote": {"roles": ["reviewer"]},
}


@pytest.mark.postgresql_only
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("deactivate", "deactivate"),
        ("demote", "deactivate"),
        ("deactivate", "demote"),
        ("demote", "demote"),
    ],
)
def test_two_last_admins_removed_at_once_one_stays(database_url, first, second):
    """A takes the first of the last two admins away and holds its transaction open; B, meanwhile,
    takes the second away. B must wait for A's row locks and then see that only its own admin is
    left. (Counting without the locks, both saw two admins and both succeeded: none left.)"""
    factory = make_session_factory(create_db_engine(database_url))
    try:
        with session_scope(factory) as session:
            ids = [
                identity_service.create_staff(
                    session, None, username=name, password=f.PASSWORD, roles=["operator_admin"]
                ).id
                for name in ("admin.one", "admin.two")
            ]
        a = factory()
        identity_service.update_staff(a, None, ids[0], **_CHANGES[first])
        outcome: list[str] = []

        def take_the_second() -> None:
            try:
                with session_scope(factory) as b:
                    identity_service.update_staff(b, None, ids[1], **_CHANGES[second])
                outcome.append("ok")
            except TanhuiError as exc:
                outcome.append(exc.code)

        commit_once_the_other_waits(a, factory, take_the_second)
        assert outcome == ["last_operator_admin"]
        with session_scope(factory) as session:
            admins = [
                v.id
                for v in identity_service.list_staff(session, None)
                if v.active and "operator_admin" in v.roles
            ]
        assert admins == [ids[1]]
    finally:
        factory.kw["bind"].dispose()


@pytest.mark.postgresql_only
def test_a_retry_racing_the_first_request_returns_its_user(database_url):
    """The first creation holds its transaction open; the retry, sent meanwhile with the same key,
    waits on the unique index and then answers with the user the first one made."""
    factory = make_session_factory(create_db_engine(database_url))
    ask = {"username": "racing.retry", "password": f.PASSWORD, "roles": ["buyer"]}
    try:
        a = factory()
        first = identity_service.create_staff(a, None, **ask, idempotency_key="race-1").id
        outcome: list[Any] = []

        def retry() -> None:
            try:
                with session_scope(factory) as b:
                    outcome.append(
                        identity_service.create_staff(b, None, **ask, idempotency_key="race-1").id
                    )
            except TanhuiError as exc:
                outcome.append(exc.code)

        commit_once_the_other_waits(a, factory, retry)
        assert outcome == [first]
        with session_scope(factory) as session:
            assert (
                len(session.scalars(select(Staff).where(Staff.username == "racing.retry")).all())
                == 1
            )
    finally:
        factory.kw["bind"].dispose()
