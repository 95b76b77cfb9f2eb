"""Consent: authorisation-code binding end to end, scenario changes, revocation, bindings_for."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest

from tanhui.identity import service as identity_service
from tanhui.identity import signing
from tests.fixtures import identity as f

REDIRECT = "https://partner.example/callback"
TOKEN_PATH = "/v1/partner/bindings/token"


def _authorize(client, user, created, *, scenarios=("metro", "bus"), user_id="u-1", **extra):
    body = {
        "partner_id": created.partner_id,
        "partner_user_id": user_id,
        "scenarios": list(scenarios),
        "redirect_uri": REDIRECT,
        "state": "st4te",
    } | extra
    return client.post("/v1/bindings/authorize", json=body, headers=user.headers)


def _exchange(client, created, code, **extra):
    body = json.dumps({"code": code} | extra).encode()
    headers = signing.signed_headers(created.key_id, created.secret, "POST", TOKEN_PATH, body)
    headers["content-type"] = "application/json"
    return client.post(TOKEN_PATH, content=body, headers=headers)


class TestBindingFlow:
    def test_end_to_end(self, session, client):
        created = f.partner(session, scenarios=("metro", "bus", "bike"))
        user = f.citizen(session)
        preview = client.get(
            "/v1/bindings/authorize",
            params={
                "partner_id": created.partner_id,
                "scenarios": "metro,bus",
                "redirect_uri": REDIRECT,
            },
        )
        assert preview.status_code == 200, preview.text
        r = _authorize(client, user, created)
        assert r.status_code == 200, r.text
        url = urlparse(r.json()["redirect_url"])
        query = parse_qs(url.query)
        assert url.geturl().startswith(REDIRECT)
        assert query["state"] == ["st4te"]
        code = query["code"][0]
        # Not bound until the partner exchanges the code.
        assert identity_service.bindings_for(session, created.partner_id, ["u-1"]) == {}
        ex = _exchange(client, created, code, redirect_uri=REDIRECT)
        assert ex.status_code == 200, ex.text
        assert ex.json()["partner_user_id"] == "u-1"
        assert ex.json()["scenarios"] == ["bus", "metro"]
        info = identity_service.bindings_for(session, created.partner_id, ["u-1", "u-2"])
        assert set(info) == {"u-1"}
        assert info["u-1"].citizen_id == user.id
        assert info["u-1"].scenarios == {"metro", "bus"}
        # The code works once.
        again = _exchange(client, created, code)
        assert (again.status_code, again.json()["code"]) == (400, "invalid_grant")
        # The citizen sees the binding and the partner's read in the access log.
        listed = client.get("/v1/me/bindings", headers=user.headers).json()
        assert [b["partner_user_id"] for b in listed] == ["u-1"]
        log = client.get("/v1/me/access-log", headers=user.headers).json()
        assert log[0]["actor_kind"] == "partner"
        # Narrow the consent, then revoke.
        binding_id = listed[0]["id"]
        r = client.patch(
            f"/v1/me/bindings/{binding_id}", json={"scenarios": ["metro"]}, headers=user.headers
        )
        assert r.status_code == 200 and r.json()["scenarios"] == ["metro"]
        info = identity_service.bindings_for(session, created.partner_id, ["u-1"])
        assert info["u-1"].scenarios == {"metro"}
        r = client.delete(f"/v1/me/bindings/{binding_id}", headers=user.headers)
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        assert identity_service.bindings_for(session, created.partner_id, ["u-1"]) == {}
        r = client.patch(
            f"/v1/me/bindings/{binding_id}", json={"scenarios": ["metro"]}, headers=user.headers
        )
        assert r.json()["code"] == "binding_revoked"
        # Authorising again reactivates the same binding.
        code2 = parse_qs(urlparse(_authorize(client, user, created).json()["redirect_url"]).query)
        assert _exchange(client, created, code2["code"][0]).status_code == 200
        assert identity_service.bindings_for(session, created.partner_id, ["u-1"])

    def test_code_belongs_to_one_partner(self, session, client):
        a = f.partner(session)
        b = f.partner(session)
        user = f.citizen(session)
        code = _authorize(client, user, a).json()["code"]
        r = _exchange(client, b, code)
        assert r.json()["code"] == "invalid_grant"
        assert _exchange(client, a, code).status_code == 200

    def test_redirect_uri_must_match(self, session, client):
        created = f.partner(session)
        user = f.citizen(session)
        r = _authorize(client, user, created, redirect_uri="https://evil.example/callback")
        assert (r.status_code, r.json()["code"]) == (422, "redirect_uri_not_registered")
        code = _authorize(client, user, created).json()["code"]
        r = _exchange(client, created, code, redirect_uri="https://partner.example/other")
        assert r.json()["code"] == "invalid_grant"

    def test_scenario_must_be_approved(self, session, client):
        created = f.partner(session, scenarios=("metro",))
        user = f.citizen(session)
        r = _authorize(client, user, created, scenarios=("metro", "ev"))
        assert (r.status_code, r.json()["code"]) == (422, "scenario_not_approved")

    @pytest.mark.parametrize("user_id", ["u 1", "用户1", "u\x00x"])
    def test_partner_user_id_is_one_records_can_carry(self, session, client, user_id):
        # Records name the user in printable ASCII without spaces: a binding to any other id could
        # never receive one.
        created = f.partner(session)
        user = f.citizen(session)
        r = _authorize(client, user, created, user_id=user_id)
        assert (r.status_code, r.json()["code"]) == (422, "invalid_partner_user_id")

    def test_only_citizens_authorize(self, session, client):
        created = f.partner(session)
        admin = f.staff(session)
        r = client.post(
            "/v1/bindings/authorize",
            json={
                "partner_id": created.partner_id,
                "partner_user_id": "x",
                "scenarios": ["metro"],
                "redirect_uri": REDIRECT,
            },
            headers=f.auth(admin.token),
        )
        assert r.json()["code"] == "citizen_only"

    def test_partner_user_bound_to_another_citizen(self, session, client):
        created = f.partner(session)
        first, second = f.citizen(session), f.citizen(session)
        assert _exchange(
            client, created, _authorize(client, first, created).json()["code"]
        ).is_success
        r = _exchange(client, created, _authorize(client, second, created).json()["code"])
        assert (r.status_code, r.json()["code"]) == (409, "partner_user_bound_elsewhere")

    def test_other_citizens_binding_not_found(self, session, client):
        created = f.partner(session)
        owner, other = f.citizen(session), f.citizen(session)
        _exchange(client, created, _authorize(client, owner, created).json()["code"])
        binding_id = client.get("/v1/me/bindings", headers=owner.headers).json()[0]["id"]
        r = client.delete(f"/v1/me/bindings/{binding_id}", headers=other.headers)
        assert (r.status_code, r.json()["code"]) == (404, "binding_not_found")
