"""Signed partner requests: every error code, replays, skew, tampering, rotation and lapsed approvals."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from tanhui.identity import service as identity_service
from tanhui.identity import signing
from tanhui.identity.models import Nonce, PartnerKey
from tanhui.kit.db import utcnow
from tanhui.kit.settings import get_settings
from tests.fixtures import identity as f

PATH = "/v1/partner/me"


def _get(client, created, *, path=PATH, **kw):
    headers = signing.signed_headers(created.key_id, created.secret, "GET", path, b"", **kw)
    return client.get(path, headers=headers)


class TestSign:
    def test_known_vector(self):
        body = b'{"a":1}'
        message = "POST\n/v1/x\n1700000000\nnonce-0123456789ab\n" + hashlib.sha256(body).hexdigest()
        expected = hmac.new(b"secret", message.encode(), hashlib.sha256).hexdigest()
        assert signing.sign(
            "secret", "post", "/v1/x?q=1", 1700000000, "nonce-0123456789ab", body
        ) == (expected)


class TestPartnerRequest:
    def test_valid(self, session, client):
        created = f.partner(session, scenarios=("metro",))
        r = _get(client, created)
        assert r.status_code == 200, r.text
        assert r.json()["partner_id"] == created.partner_id
        assert r.json()["scenarios"] == ["metro"]

    def test_query_string_not_signed(self, session, client):
        created = f.partner(session)
        headers = signing.signed_headers(created.key_id, created.secret, "GET", PATH, b"")
        assert client.get(PATH + "?page=2", headers=headers).status_code == 200

    def test_missing_headers(self, session, client):
        created = f.partner(session)
        headers = signing.signed_headers(created.key_id, created.secret, "GET", PATH, b"")
        del headers[signing.NONCE_HEADER]
        r = client.get(PATH, headers=headers)
        assert r.status_code == 401
        assert r.json()["code"] == "missing_signature_headers"
        assert r.json()["field"] == signing.NONCE_HEADER
        assert client.get(PATH).json()["code"] == "missing_signature_headers"

    def test_malformed_nonce_and_timestamp(self, session, client):
        created = f.partner(session)
        r = _get(client, created, nonce="short")
        assert (r.status_code, r.json()["code"]) == (401, "malformed_signature_headers")
        headers = signing.signed_headers(created.key_id, created.secret, "GET", PATH, b"")
        headers[signing.TIMESTAMP_HEADER] = "yesterday"
        assert client.get(PATH, headers=headers).json()["code"] == "malformed_signature_headers"

    def test_unknown_key(self, client):
        r = client.get(PATH, headers=signing.signed_headers("pk_nope", "x", "GET", PATH, b""))
        assert (r.status_code, r.json()["code"]) == (401, "unknown_key")

    def test_wrong_secret(self, session, client):
        created = f.partner(session)
        headers = signing.signed_headers(created.key_id, "not-the-secret", "GET", PATH, b"")
        r = client.get(PATH, headers=headers)
        assert (r.status_code, r.json()["code"]) == (401, "bad_signature")

    def test_other_partners_key(self, session, client):
        a = f.partner(session)
        b = f.partner(session)
        headers = signing.signed_headers(a.key_id, b.secret, "GET", PATH, b"")
        assert client.get(PATH, headers=headers).json()["code"] == "bad_signature"

    def test_tampered_body(self, session, client):
        created = f.partner(session)
        path = "/v1/partner/bindings/token"
        signed = json.dumps({"code": "abc"}).encode()
        headers = signing.signed_headers(created.key_id, created.secret, "POST", path, signed)
        headers["content-type"] = "application/json"
        r = client.post(path, content=json.dumps({"code": "abd"}), headers=headers)
        assert (r.status_code, r.json()["code"]) == (401, "bad_signature")

    def test_tampered_method_or_path(self, session, client):
        created = f.partner(session)
        headers = signing.signed_headers(created.key_id, created.secret, "POST", PATH, b"")
        assert client.get(PATH, headers=headers).json()["code"] == "bad_signature"
        headers = signing.signed_headers(created.key_id, created.secret, "GET", "/v1/other", b"")
        assert client.get(PATH, headers=headers).json()["code"] == "bad_signature"

    def test_a_path_prefix_stripped_by_a_gateway(self, session, client, monkeypatch):
        # The platform is public at https://city.example/carbon; the gateway forwards /carbon/v1/...
        # as /v1/... A partner may sign either the path it sent or the API path.
        created = f.partner(session)
        monkeypatch.setenv("TANHUI_BASE_URL", "https://city.example/carbon/")
        get_settings.cache_clear()
        try:
            for signed in ("/carbon" + PATH, PATH):
                headers = signing.signed_headers(created.key_id, created.secret, "GET", signed, b"")
                assert client.get(PATH, headers=headers).status_code == 200, signed
            other = signing.signed_headers(
                created.key_id, created.secret, "GET", "/other" + PATH, b""
            )
            assert client.get(PATH, headers=other).json()["code"] == "bad_signature"
        finally:
            monkeypatch.delenv("TANHUI_BASE_URL")
            get_settings.cache_clear()
        # Without a prefix in the platform's address, only the path received is accepted.
        headers = signing.signed_headers(
            created.key_id, created.secret, "GET", "/carbon" + PATH, b""
        )
        assert client.get(PATH, headers=headers).json()["code"] == "bad_signature"

    def test_clock_skew(self, session, client):
        created = f.partner(session)
        r = _get(client, created, now=time.time() - 400)
        assert (r.status_code, r.json()["code"]) == (401, "clock_skew")
        r = _get(client, created, now=time.time() + 400)
        assert r.json()["code"] == "clock_skew"
        assert _get(client, created, now=time.time() - 200).status_code == 200

    def test_replayed_nonce(self, session, client):
        created = f.partner(session)
        headers = signing.signed_headers(created.key_id, created.secret, "GET", PATH, b"")
        assert client.get(PATH, headers=headers).status_code == 200
        r = client.get(PATH, headers=headers)
        assert (r.status_code, r.json()["code"]) == (401, "nonce_reused")

    def test_bad_signature_does_not_burn_nonce(self, session, client):
        created = f.partner(session)
        nonce = "n" * 20
        bad = signing.signed_headers(created.key_id, "wrong", "GET", PATH, b"", nonce=nonce)
        assert client.get(PATH, headers=bad).json()["code"] == "bad_signature"
        assert _get(client, created, nonce=nonce).status_code == 200

    def test_revoked_key(self, session, client):
        created = f.partner(session)
        identity_service.revoke_key(session, None, created.key_id)
        session.flush()
        r = _get(client, created)
        assert (r.status_code, r.json()["code"]) == (401, "key_revoked")

    def test_rotation_grace_period(self, session, client):
        created = f.partner(session)
        new = identity_service.rotate_key(session, None, created.partner_id)
        session.flush()
        assert new.old_keys_valid_until is not None
        # Within the grace period both keys work.
        assert _get(client, created).status_code == 200
        assert (
            _get(
                client,
                identity_service.PartnerCreated(
                    created.partner_id, created.organisation_id, new.key_id, new.secret
                ),
            ).status_code
            == 200
        )
        # After it, the old one is refused.
        session.execute(
            update(PartnerKey)
            .where(PartnerKey.key_id == created.key_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.flush()
        r = _get(client, created)
        assert (r.status_code, r.json()["code"]) == (401, "key_revoked")

    def test_rotation_via_api(self, session, client):
        created = f.partner(session)
        admin = f.staff(session, "operator_admin")
        r = client.post(
            f"/v1/partners/{created.partner_id}/keys",
            json={"grace_hours": 0},
            headers=f.auth(admin.token),
        )
        assert r.status_code == 201, r.text
        new = identity_service.PartnerCreated(
            created.partner_id, created.organisation_id, r.json()["key_id"], r.json()["secret"]
        )
        assert _get(client, new).status_code == 200
        assert _get(client, created).json()["code"] == "key_revoked"  # grace 0: expired at once

    def test_rotation_needs_permission(self, session, client):
        created = f.partner(session)
        other = f.staff(session, "merchant")
        r = client.post(f"/v1/partners/{created.partner_id}/keys", headers=f.auth(other.token))
        assert (r.status_code, r.json()["code"]) == (403, "missing_role")

    def test_lapsed_approval(self, session, client):
        created = f.partner(session, valid_until=date.today() - timedelta(days=2))
        r = _get(client, created)
        assert (r.status_code, r.json()["code"]) == (403, "partner_approval_lapsed")

    def test_secret_encrypted_at_rest(self, session):
        created = f.partner(session)
        stored = session.scalar(
            select(PartnerKey.secret_encrypted).where(PartnerKey.key_id == created.key_id)
        )
        assert created.secret not in stored

    def test_prune_nonces(self, session, client):
        created = f.partner(session)
        assert _get(client, created).status_code == 200
        count = select(func.count()).select_from(Nonce).where(Nonce.key_id == created.key_id)
        assert session.scalar(count) == 1
        identity_service.prune_nonces(session, now=utcnow() + timedelta(hours=1))
        assert session.scalar(count) == 0


class TestSignProperties:
    @given(
        body=st.binary(max_size=256),
        flip=st.integers(min_value=0, max_value=255),
        nonce=st.text(alphabet="abcdef0123456789", min_size=16, max_size=64),
    )
    def test_any_change_to_the_body_breaks_the_signature(self, body, flip, nonce):
        signature = signing.sign("k", "POST", "/v1/x", 1700000000, nonce, body)
        assert len(signature) == 64 and signature == signature.lower()
        assert signing.sign("k", "POST", "/v1/x", 1700000000, nonce, body) == signature
        if body:
            i = flip % len(body)
            tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
            assert signing.sign("k", "POST", "/v1/x", 1700000000, nonce, tampered) != signature
        assert signing.sign("k", "POST", "/v1/x", 1700000001, nonce, body) != signature
