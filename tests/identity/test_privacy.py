"""PIPL: access log of staff reads, export, erasure."""

from __future__ import annotations

from tanhui.identity import service as identity_service
from tests.fixtures import identity as f


class TestAccessLog:
    def test_staff_read_is_visible_to_citizen(self, session, client):
        user = f.citizen(session, nickname="小绿")
        reviewer = f.staff(session, "reviewer")
        r = client.get(
            f"/v1/citizens/{user.id}", params={"why": "ticket #12"}, headers=f.auth(reviewer.token)
        )
        assert r.status_code == 200, r.text
        assert r.json()["nickname"] == "小绿"
        log = client.get("/v1/me/access-log", headers=user.headers).json()
        assert len(log) == 1
        assert log[0]["actor_kind"] == "staff"
        assert log[0]["actor_id"] == reviewer.principal.id
        assert log[0]["why"] == "ticket #12"

    def test_reason_required_and_roles(self, session, client):
        user = f.citizen(session)
        reviewer = f.staff(session, "reviewer")
        merchant = f.staff(session, "merchant")
        r = client.get(f"/v1/citizens/{user.id}", headers=f.auth(reviewer.token))
        assert (r.status_code, r.json()["field"]) == (422, "why")
        r = client.get(
            f"/v1/citizens/{user.id}", params={"why": "curious"}, headers=f.auth(merchant.token)
        )
        assert r.status_code == 403
        r = client.get(
            "/v1/citizens/999999999", params={"why": "x" * 5}, headers=f.auth(reviewer.token)
        )
        assert (r.status_code, r.json()["code"]) == (404, "citizen_not_found")
        assert client.get("/v1/me/access-log", headers=user.headers).json() == []


class TestExport:
    def test_export_with_hook(self, session, client):
        user = f.citizen(session, nickname="小绿")

        def hook(s, citizen_id):
            return "test_section", {"citizen_id": citizen_id}

        identity_service.EXPORT_SECTIONS.append(hook)
        try:
            r = client.get("/v1/me/export", headers=user.headers)
        finally:
            identity_service.EXPORT_SECTIONS.remove(hook)
        assert r.status_code == 200
        body = r.json()
        assert body["identity"]["profile"]["nickname"] == "小绿"
        assert body["identity"]["bindings"] == []
        assert body["test_section"] == {"citizen_id": user.id}
        assert user.phone not in r.text


class TestErase:
    def test_delete_me(self, session, client):
        created = f.partner(session)
        user = f.citizen(session, nickname="小绿")
        from tests.identity.test_bindings import _authorize, _exchange

        _exchange(client, created, _authorize(client, user, created).json()["code"])
        assert identity_service.bindings_for(session, created.partner_id, ["u-1"])
        assert client.delete("/v1/me", headers=user.headers).status_code == 204
        # Sessions and bindings are gone, the row is anonymised.
        assert client.get("/v1/me", headers=user.headers).status_code == 401
        assert identity_service.bindings_for(session, created.partner_id, ["u-1"]) == {}
        session.expire_all()
        citizen = identity_service.get_citizen(session, user.id)
        assert (citizen.phone_hash, citizen.nickname, citizen.district) == (None, None, None)
        assert citizen.erased_at is not None
        # The same phone later is a new, unrelated citizen.
        again = identity_service.citizen_for_phone(session, user.phone)
        assert again.id != user.id
