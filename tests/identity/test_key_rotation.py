"""Key rotation retried: under one Idempotency-Key it makes one key, and every answer carries it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tanhui.identity import service as identity_service
from tanhui.identity.models import PartnerKey
from tanhui.kit.db import create_db_engine, make_session_factory, session_scope
from tanhui.kit.errors import TanhuiError
from tanhui.web import security
from tests.fixtures import identity as f
from tests.fixtures.locks import commit_once_the_other_waits
from tests.identity.test_signing import _get
from tests.web.conftest import csrf, login_as


def _keys(session: Any, partner_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(PartnerKey).where(PartnerKey.partner_id == partner_id)
    )


def test_a_retried_rotation_answers_with_the_same_key_and_secret(session, client):  # type: ignore[no-untyped-def]
    created = f.partner(session)
    admin = f.staff(session, "operator_admin")
    headers = {**f.auth(admin.token), "Idempotency-Key": "rotate-1"}
    first = client.post(
        f"/v1/partners/{created.partner_id}/keys", json={"grace_hours": 2}, headers=headers
    )
    again = client.post(
        f"/v1/partners/{created.partner_id}/keys", json={"grace_hours": 2}, headers=headers
    )
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert _keys(session, created.partner_id) == 2  # the first key and one new one
    new = identity_service.PartnerCreated(
        created.partner_id, created.organisation_id, first.json()["key_id"], first.json()["secret"]
    )
    assert _get(client, new).status_code == 200
    other = client.post(
        f"/v1/partners/{created.partner_id}/keys", json={"grace_hours": 5}, headers=headers
    )
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")
    assert _keys(session, created.partner_id) == 2


def test_a_refused_rotation_spends_nothing(session, client):  # type: ignore[no-untyped-def]
    created = f.partner(session)
    merchant = f.staff(session, "merchant")
    refused = client.post(
        f"/v1/partners/{created.partner_id}/keys",
        headers={**f.auth(merchant.token), "Idempotency-Key": "rotate-2"},
    )
    assert refused.status_code == 403
    admin = f.staff(session, "operator_admin")
    done = client.post(
        f"/v1/partners/{created.partner_id}/keys",
        headers={**f.auth(admin.token), "Idempotency-Key": "rotate-2"},
    )
    assert done.status_code == 201, done.text
    assert _keys(session, created.partner_id) == 2


def test_the_console_s_new_key_clicked_twice_makes_one_key(session, client):  # type: ignore[no-untyped-def]
    created = f.partner(session)
    admin = f.staff(session, "operator_admin")
    login_as(client, admin.token)
    page = client.get("/console/partners").text
    assert 'name="rotate_key"' in page
    data = {security.CSRF_FIELD: csrf(client), "rotate_key": "form-key-9"}
    first = client.post(f"/console/partners/{created.partner_id}/rotate", data=data)
    second = client.post(f"/console/partners/{created.partner_id}/rotate", data=data)
    assert first.status_code == second.status_code == 200
    [key_id] = session.scalars(
        select(PartnerKey.key_id).where(
            PartnerKey.partner_id == created.partner_id, PartnerKey.key_id != created.key_id
        )
    ).all()
    assert key_id in first.text and key_id in second.text


@pytest.mark.postgresql_only
def test_a_retry_racing_the_first_rotation_returns_its_key(database_url):  # type: ignore[no-untyped-def]
    """The first rotation holds its transaction open; the retry waits on the unique index (or on
    the old keys' rows), then answers with the first one's key."""
    factory = make_session_factory(create_db_engine(database_url))
    try:
        with session_scope(factory) as setup:
            created = f.partner(setup)
        a = factory()
        first = identity_service.rotate_key(
            a, None, created.partner_id, idempotency_key=f"race-{created.partner_id}"
        )
        outcome: list[Any] = []

        def retry() -> None:
            try:
                with session_scope(factory) as b:
                    outcome.append(
                        identity_service.rotate_key(
                            b,
                            None,
                            created.partner_id,
                            idempotency_key=f"race-{created.partner_id}",
                        )
                    )
            except TanhuiError as exc:
                outcome.append(exc.code)

        commit_once_the_other_waits(a, factory, retry)
        assert [(k.key_id, k.secret) for k in outcome] == [(first.key_id, first.secret)]
        with session_scope(factory) as session:
            assert _keys(session, created.partner_id) == 2
    finally:
        factory.kw["bind"].dispose()


def test_a_caller_s_key_never_meets_the_platform_s_own_key_names(session, client):  # type: ignore[no-untyped-def]
    """A rotation under the key "application:<id>" (the name an approval gives a new partner's
    first key) is the caller's own; and a 200-character key fits."""
    created = f.partner(session)
    admin = f.staff(session, "operator_admin")
    for key in ("application:1", "k" * 200):
        r = client.post(
            f"/v1/partners/{created.partner_id}/keys",
            headers={**f.auth(admin.token), "Idempotency-Key": key},
        )
        assert r.status_code == 201, r.text
    assert _keys(session, created.partner_id) == 3
