"""The identity demo seeder: partners can sign, citizens are bound, staff can log in."""

from __future__ import annotations

import random

from tanhui.demo import DemoContext
from tanhui.identity import demo as identity_demo
from tanhui.identity import service as identity_service
from tanhui.identity import signing


def test_seed(session, client):
    ctx = DemoContext(rng=random.Random(7))
    identity_demo.seed(session, ctx)
    session.flush()
    assert len(ctx.data["citizens"]) == identity_demo.CITIZENS
    assert len(ctx.data["partners"]) == 5
    principal, _ = identity_service.login_staff(
        session, username="admin", password="admin-demo-2026"
    )
    assert "operator_admin" in principal.roles
    metro = ctx.data["partners"][0]
    headers = signing.signed_headers(metro["key_id"], metro["secret"], "GET", "/v1/partner/me")
    assert client.get("/v1/partner/me", headers=headers).json()["scenarios"] == metro["scenarios"]
    bound = [c for c in ctx.data["citizens"] if metro["partner_id"] in c["partner_user_ids"]]
    assert bound
    user_id = bound[0]["partner_user_ids"][metro["partner_id"]]
    info = identity_service.bindings_for(session, metro["partner_id"], [user_id])
    assert info[user_id].citizen_id == bound[0].id
    assert any(line.startswith("identity: staff logins") for line in ctx.summary)
