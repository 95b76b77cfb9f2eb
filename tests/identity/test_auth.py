"""Logins, tokens and the auth dependencies, through the API."""

from __future__ import annotations

import pytest
from fastapi import Depends
from sqlalchemy import select, update

from tanhui.identity import service as identity_service
from tanhui.identity.auth import SESSION_COOKIE, current_citizen, current_staff, require_role
from tanhui.identity.models import Citizen, Token
from tanhui.identity.principal import Principal
from tanhui.kit.db import create_db_engine, make_session_factory, session_scope
from tanhui.kit.errors import TanhuiError
from tests.fixtures import identity as f
from tests.fixtures.locks import commit_once_the_other_waits


class TestStaffLogin:
    def test_login_and_me(self, session, client):
        user = f.staff(session, "reviewer")
        r = client.post(
            "/v1/auth/staff/login", json={"username": user.username, "password": f.PASSWORD}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["principal"]["kind"] == "staff"
        assert body["principal"]["roles"] == ["reviewer"]
        me = client.get("/v1/me", headers=f.auth(body["token"]))
        assert me.status_code == 200
        assert me.json()["principal"]["id"] == user.principal.id
        assert me.json()["citizen"] is None

    def test_wrong_passwords_in_a_row_lock_the_account(self, session, client):
        from datetime import timedelta

        from tanhui.identity.models import Staff
        from tanhui.identity.service import accounts

        user = f.staff(session)
        session.flush()
        login = "/v1/auth/staff/login"
        wrong = {"username": user.username, "password": "guess"}
        right = {"username": user.username, "password": f.PASSWORD}
        for _ in range(accounts.STAFF_MAX_FAILURES - 1):
            assert client.post(login, json=wrong).status_code == 401
        # A success in between resets the count: only failures in a row count.
        assert client.post(login, json=right).status_code == 200
        for _ in range(accounts.STAFF_MAX_FAILURES):
            assert client.post(login, json=wrong).json()["code"] == "invalid_credentials"
        locked = client.post(login, json=right)
        assert (locked.status_code, locked.json()["code"]) == (429, "login_locked")
        assert locked.json()["retry_after"] > 0
        # The lock lapses by itself.
        staff = session.get(Staff, user.principal.id)
        session.refresh(staff)
        staff.locked_until = staff.locked_until - accounts.STAFF_LOCKOUT - timedelta(seconds=1)
        session.flush()
        assert client.post(login, json=right).status_code == 200

    def test_wrong_password(self, session, client):
        user = f.staff(session)
        r = client.post(
            "/v1/auth/staff/login", json={"username": user.username, "password": "nope"}
        )
        assert r.status_code == 401
        assert r.json()["code"] == "invalid_credentials"

    def test_unknown_user(self, client):
        r = client.post("/v1/auth/staff/login", json={"username": "ghost", "password": "x"})
        assert r.status_code == 401
        assert r.json()["code"] == "invalid_credentials"

    def test_extra_field_rejected(self, client):
        r = client.post(
            "/v1/auth/staff/login", json={"username": "a", "password": "b", "admin": True}
        )
        assert r.status_code == 422
        assert r.json()["code"] == "invalid_input"

    def test_password_hash_is_argon2(self, session):
        user = f.staff(session)
        from tanhui.identity.models import Staff

        stored = session.scalar(select(Staff.password_hash).where(Staff.username == user.username))
        assert stored.startswith("$argon2id$")
        assert f.PASSWORD not in stored


class TestCitizenLogin:
    def test_otp_flow_creates_citizen_once(self, session, client):
        phone = f.unique_phone()
        assert client.post("/v1/auth/otp", json={"phone": phone}).status_code == 200
        code = identity_service.last_otp(phone)
        assert code is not None and len(code) == 6
        r = client.post("/v1/auth/citizen/login", json={"phone": "+86 " + phone, "code": code})
        assert r.status_code == 200, r.text
        first = r.json()["principal"]["id"]
        me = client.get("/v1/me", headers=f.auth(r.json()["token"]))
        assert me.json()["citizen"]["id"] == first
        # Second login with a fresh code: the same citizen.
        client.post("/v1/auth/otp", json={"phone": phone})
        r2 = client.post(
            "/v1/auth/citizen/login",
            json={"phone": phone, "code": identity_service.last_otp(phone)},
        )
        assert r2.json()["principal"]["id"] == first

    def test_phone_stored_as_keyed_hash(self, session, platform_secret):
        phone = f.unique_phone()
        c = identity_service.citizen_for_phone(session, phone)
        stored = session.scalar(select(Citizen.phone_hash).where(Citizen.id == c.id))
        assert phone not in stored
        import hashlib

        assert stored != hashlib.sha256(phone.encode()).hexdigest()
        assert stored == identity_service.phone_hash(phone)

    def test_wrong_code_then_attempts_exhausted(self, session, client):
        phone = f.unique_phone()
        client.post("/v1/auth/otp", json={"phone": phone})
        code = identity_service.last_otp(phone)
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(identity_service.accounts.OTP_MAX_ATTEMPTS):
            r = client.post("/v1/auth/citizen/login", json={"phone": phone, "code": wrong})
            assert r.status_code == 401
            assert r.json()["code"] == "invalid_otp"
        # The attempts were kept despite the 401s: even the right code is now refused.
        r = client.post("/v1/auth/citizen/login", json={"phone": phone, "code": code})
        assert r.status_code == 401

    def test_code_is_single_use(self, client):
        phone = f.unique_phone()
        client.post("/v1/auth/otp", json={"phone": phone})
        code = identity_service.last_otp(phone)
        assert client.post("/v1/auth/citizen/login", json={"phone": phone, "code": code}).is_success
        again = client.post("/v1/auth/citizen/login", json={"phone": phone, "code": code})
        assert again.status_code == 401

    def test_bad_phone(self, client):
        r = client.post("/v1/auth/otp", json={"phone": "12345"})
        assert r.status_code == 422
        assert r.json()["code"] == "invalid_phone"
        assert r.json()["field"] == "phone"

    def test_rate_limited(self, client):
        phone = f.unique_phone()
        for _ in range(identity_service.accounts.OTP_MAX_PER_WINDOW):
            assert client.post("/v1/auth/otp", json={"phone": phone}).status_code == 200
        r = client.post("/v1/auth/otp", json={"phone": phone})
        assert r.status_code == 429
        assert r.json()["code"] == "otp_rate_limited"

    def test_gateway_failure_is_a_problem_not_a_500(self, client, monkeypatch):
        class Down:
            def send(self, phone: str, code: str) -> None:
                raise ConnectionError("SMS gateway unreachable")

        monkeypatch.setattr(identity_service.accounts, "otp_sender", Down())
        r = client.post("/v1/auth/otp", json={"phone": f.unique_phone()})
        assert r.status_code == 503
        assert r.json()["code"] == "otp_delivery_failed"
        assert r.json()["field"] == "phone"

    def test_profile_update(self, session, client):
        user = f.citizen(session)
        r = client.patch(
            "/v1/me", json={"nickname": "小绿", "district": "南山"}, headers=user.headers
        )
        assert r.status_code == 200
        assert r.json()["district"] == "南山"


class TestTokens:
    def test_missing_token(self, client):
        r = client.get("/v1/me")
        assert r.status_code == 401
        assert r.json()["code"] == "not_authenticated"

    def test_unknown_token(self, client):
        r = client.get("/v1/me", headers=f.auth("bogus"))
        assert r.status_code == 401
        assert r.json()["code"] == "invalid_token"

    def test_cookie_accepted(self, session, client):
        user = f.citizen(session)
        client.cookies.set(SESSION_COOKIE, user.token)
        try:
            assert client.get("/v1/me").json()["principal"]["id"] == user.id
        finally:
            client.cookies.clear()

    def test_logout_revokes(self, session, client):
        user = f.citizen(session)
        assert client.post("/v1/auth/logout", headers=user.headers).status_code == 204
        r = client.get("/v1/me", headers=user.headers)
        assert r.status_code == 401
        assert r.json()["code"] == "invalid_token"

    def test_expired_token(self, session, client):
        user = f.citizen(session)
        session.execute(
            update(Token)
            .where(Token.subject_id == user.id, Token.kind == "citizen")
            .values(expires_at=identity_service.accounts.utcnow())
        )
        session.flush()
        assert client.get("/v1/me", headers=user.headers).status_code == 401


class TestDependencies:
    def _routes(self, app):
        @app.get("/test/admin")
        def admin(p: Principal = Depends(require_role("operator_admin", "reviewer"))) -> dict:
            return {"id": p.id}

        @app.get("/test/citizen")
        def citizen_only(p: Principal = Depends(current_citizen)) -> dict:
            return {"id": p.id}

        @app.get("/test/staff")
        def staff_only(p: Principal = Depends(current_staff)) -> dict:
            return {"id": p.id}

    def test_require_role(self, session, app, client):
        self._routes(app)
        reviewer = f.staff(session, "reviewer")
        merchant = f.staff(session, "merchant")
        assert client.get("/test/admin").status_code == 401
        assert client.get("/test/admin", headers=f.auth(reviewer.token)).status_code == 200
        r = client.get("/test/admin", headers=f.auth(merchant.token))
        assert r.status_code == 403
        assert r.json()["code"] == "missing_role"

    def test_kind_checks(self, session, app, client):
        self._routes(app)
        user = f.citizen(session)
        admin = f.staff(session)
        assert client.get("/test/citizen", headers=user.headers).status_code == 200
        assert client.get("/test/citizen", headers=f.auth(admin.token)).json()["code"] == (
            "citizen_only"
        )
        assert client.get("/test/staff", headers=user.headers).json()["code"] == "staff_only"
        assert client.get("/test/staff", headers=f.auth(admin.token)).status_code == 200


class TestService:
    def test_unknown_role(self, session):
        import pytest

        from tanhui.kit.errors import InvalidInput

        with pytest.raises(InvalidInput) as e:
            identity_service.create_staff(
                session, None, username="x1", password="long enough", roles=["god"]
            )
        assert e.value.code == "unknown_role"

    def test_only_admin_creates_staff(self, session):
        import pytest

        from tanhui.kit.errors import Forbidden

        reviewer = f.staff(session, "reviewer")
        with pytest.raises(Forbidden):
            identity_service.create_staff(
                session, reviewer.principal, username="x2", password="long enough", roles=[]
            )

    def test_duplicate_username(self, session):
        import pytest

        from tanhui.kit.errors import Conflict

        user = f.staff(session)
        with pytest.raises(Conflict) as e:
            identity_service.create_staff(
                session, None, username=user.username, password="long enough", roles=[]
            )
        assert e.value.code == "username_taken"

    def test_organisation(self, session):
        org = identity_service.create_organisation(
            session, None, name="深圳地铁", kind="partner", licence_no="9144"
        )
        assert (org.id, org.kind) == (org.id, "partner")
        user = f.staff(session, "merchant", organisation_id=org.id)
        assert user.principal.organisation_id == org.id


class TestOrganisations:
    def test_staff_list_organisations_by_kind(self, session, client):
        from tanhui.identity import service as identity_service

        verifier = identity_service.create_organisation(
            session, None, name="核查机构甲", kind="verifier"
        )
        identity_service.create_organisation(session, None, name="商户丙", kind="merchant")
        user = f.staff(session, "operator_admin")
        session.flush()
        listed = client.get("/v1/organisations?kind=verifier", headers=f.auth(user.token))
        assert listed.status_code == 200
        assert {"id": verifier.id, "name": "核查机构甲", "kind": "verifier"} in listed.json()
        assert all(o["kind"] == "verifier" for o in listed.json())
        assert (
            client.get("/v1/organisations?kind=nope", headers=f.auth(user.token)).status_code == 422
        )
        assert client.get("/v1/organisations").status_code == 401
        person = f.citizen(session)
        assert client.get("/v1/organisations", headers=person.headers).status_code == 403


class TestOtpDeliveredAfterCommit:
    """The code reaches the sender only once the database has kept it."""

    def test_the_code_is_committed_before_it_is_sent(self, database_url, monkeypatch):
        from fastapi.testclient import TestClient
        from sqlalchemy import func

        from tanhui.app import create_app
        from tanhui.identity.models import OneTimeCode
        from tanhui.kit.db import create_db_engine

        phone = f.unique_phone()
        observer = create_db_engine(database_url)  # a connection of its own sees only commits
        seen: list[int] = []

        class Observing:
            def send(self, number: str, code: str) -> None:
                with observer.connect() as connection:
                    seen.append(
                        connection.scalar(
                            select(func.count())
                            .select_from(OneTimeCode)
                            .where(OneTimeCode.phone_hash == identity_service.phone_hash(number))
                        )
                    )

        monkeypatch.setattr(identity_service.accounts, "otp_sender", Observing())
        try:
            with TestClient(create_app(), raise_server_exceptions=False) as client:
                assert client.post("/v1/auth/otp", json={"phone": phone}).status_code == 200
                assert client.post("/v1/auth/otp", json={"phone": phone}).status_code == 200
        finally:
            observer.dispose()
        assert seen == [1, 2]


@pytest.mark.postgresql_only
def test_two_requests_for_the_last_code_at_once_send_one(database_url):
    """A stores the last code the window allows and holds its transaction open; B asks for one
    more. B must wait for A, then count A's code and refuse. (Without the wait, both counted the
    same committed codes and both sent one.)"""
    factory = make_session_factory(create_db_engine(database_url))
    phone = f.unique_phone()
    try:
        for _ in range(identity_service.accounts.OTP_MAX_PER_WINDOW - 1):
            with session_scope(factory) as session:
                identity_service.request_otp(session, phone=phone)
        a = factory()
        identity_service.request_otp(a, phone=phone)
        outcome: list[str] = []

        def ask_again() -> None:
            try:
                with session_scope(factory) as b:
                    identity_service.request_otp(b, phone=phone)
                outcome.append("stored")
            except TanhuiError as exc:
                outcome.append(exc.code)

        commit_once_the_other_waits(a, factory, ask_again)
        assert outcome == ["otp_rate_limited"]
    finally:
        factory.kw["bind"].dispose()
