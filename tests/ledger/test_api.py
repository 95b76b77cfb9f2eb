from __future__ import annotations

import httpx
from sqlalchemy import update
from sqlalchemy.orm import Session

from tanhui.ledger.models import Account
from tests.fixtures.identity import staff
from tests.fixtures.ledger import citizen_account


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TestOperatorRoutes:
    def test_check_reports_a_tampered_balance(self, client: httpx.Client, session: Session) -> None:
        admin = staff(session, "operator_admin")
        account = citizen_account(session, funded=40)
        session.flush()
        clean = client.get("/v1/ledger/check", headers=_auth(admin.token)).json()
        assert clean == {"ok": True, "problems": []}
        session.execute(update(Account).where(Account.id == account).values(balance=41))
        session.flush()
        body = client.get("/v1/ledger/check", headers=_auth(admin.token)).json()
        assert body["ok"] is False
        assert f"account {account}" in body["problems"][0]["subject"]

    def test_balance(self, client: httpx.Client, session: Session) -> None:
        admin = staff(session, "operator_admin")
        account = citizen_account(session, funded=40)
        session.flush()
        body = client.get(f"/v1/ledger/accounts/{account}", headers=_auth(admin.token)).json()
        assert (body["balance"], body["available"]) == (40, 40)
        missing = client.get("/v1/ledger/accounts/999999999", headers=_auth(admin.token))
        assert (missing.status_code, missing.json()["code"]) == (404, "account_not_found")

    def test_roles_are_enforced(self, client: httpx.Client, session: Session) -> None:
        merchant = staff(session, "merchant")
        session.flush()
        assert client.get("/v1/ledger/check").status_code == 401
        forbidden = client.get("/v1/ledger/check", headers=_auth(merchant.token))
        assert (forbidden.status_code, forbidden.json()["code"]) == (403, "missing_role")
