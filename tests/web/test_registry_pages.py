"""Registry pages: the public registry (no login) and an organisation's account with transfer,
retire and the operator's cancellation; errors beside their field; nothing answers 500."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tanhui.registry import service as registry_service
from tanhui.trust import service as trust_service
from tanhui.web import security
from tests.fixtures.projects import Cast, cast, registered_project
from tests.web.conftest import csrf, login_as


@dataclass
class Issued:
    c: Cast
    project_id: int
    batch_id: int
    prefix: str
    owner_account: int


@pytest.fixture
def issued(session: Session) -> Issued:
    c = cast(session)
    project = registered_project(session, c)
    owner_account = registry_service.account_for_organisation(session, c.owner_org)
    batch = registry_service.issue(
        session,
        c.operator.principal,
        account_id=owner_account.id,
        quantity=500,
        vintage=2025,
        project_number=project.id,
        source_kind="project_report",
        source_ref="web-test",
        idempotency_key="web-test-issue",
    )
    session.flush()
    return Issued(c, project.id, batch.id, registry_service.batch_prefix(batch), owner_account.id)


def _post(client: Any, path: str, data: dict[str, str]) -> Any:
    return client.post(
        path, data={security.CSRF_FIELD: csrf(client), **data}, follow_redirects=False
    )


def _key(page: str, form_id: str) -> str:
    section = page.split(f'id="{form_id}"', 1)[1]
    found = re.search(r'name="idempotency_key" value="([^"]+)"', section)
    assert found
    return found.group(1)


class TestPublic:
    @pytest.mark.parametrize("lang", ["zh", "en"])
    def test_every_page_renders_without_login(self, client, issued, lang):
        for path in (
            "/registry",
            "/registry/projects",
            f"/registry/projects/{issued.project_id}",
            "/registry/batches",
            f"/registry/batches/{issued.batch_id}",
            "/registry/retirements",
        ):
            page = client.get(f"{path}?lang={lang}")
            assert page.status_code == 200, (path, page.text[:1000])
            assert ('lang="zh-CN"' if lang == "zh" else 'lang="en"') in page.text

    def test_home_has_totals_chart_and_exports(self, client, issued):
        page = client.get("/registry?lang=en").text
        assert 'id="registry-totals"' in page and "500" in page
        assert "<svg" in page
        for link in ("/v1/registry/batches/export.csv", "/v1/registry/retirements/export.csv"):
            assert link in page
            assert client.get(link).status_code == 200

    def test_batch_shows_blocks_and_events(self, client, issued):
        page = client.get(f"/registry/batches/{issued.batch_id}").text
        assert f"{issued.prefix}-000001-000500" in page or f"{issued.prefix}-000001" in page
        assert 'id="blocks"' in page and 'id="events"' in page
        assert client.get(f"/registry/batches?q={issued.prefix}").text.count(issued.prefix) >= 1

    def test_unregistered_projects_are_not_public(self, client, session, issued):
        from datetime import date

        from tanhui.projects import service as projects_service

        draft = projects_service.create_project(
            session,
            issued.c.owner.principal,
            name="secret draft",
            project_type="rooftop_pv",
            methodology_id="shanghai-distributed-pv",
            methodology_version="1",
            location="l",
            district="d",
            crediting_start=date(2025, 1, 1),
            crediting_end=date(2030, 1, 1),
        )
        assert client.get(f"/registry/projects/{draft.id}").status_code == 404
        assert "secret draft" not in client.get("/registry/projects").text

    @pytest.mark.parametrize("bad", ["abc", "-1", "99999999999999999999", "1%00", "RT-" + "9" * 40])
    def test_bad_ids_never_500(self, client, bad):
        for path in (
            f"/registry/projects/{bad}",
            f"/registry/batches/{bad}",
            f"/registry/retirements/{bad}",
        ):
            assert client.get(path).status_code in (404, 422), path
        for query in ("q=%00", "q=TH-x-y", "purpose=nonsense", "q=" + "z" * 500):
            assert client.get(f"/registry/retirements?{query}").status_code == 200
            assert client.get(f"/registry/batches?{query}").status_code == 200


class TestAccount:
    def test_holder_retires_and_the_public_page_shows_the_proof(self, client, session, issued):
        login_as(client, issued.c.owner.token)
        page = client.get("/console/registry").text
        assert 'id="holdings"' in page and f"{issued.prefix}" in page
        assert 'id="cancel"' not in page  # the operator's form only
        data = {
            "account_id": str(issued.owner_account),
            "batch_id": str(issued.batch_id),
            "quantity": "120",
            "purpose": "event_neutrality",
            "beneficiary": "2026 上海马拉松",
            "idempotency_key": _key(page, "retire"),
        }
        done = _post(client, "/console/registry/retire", data)
        assert done.status_code == 303, done.text[:2000]
        location = done.headers["location"]
        again = _post(client, "/console/registry/retire", data)  # a double submit: one retirement
        assert again.headers["location"] == location
        assert len(registry_service.list_retirements(session)) == 1
        trust_service.integrate_all(session)
        public = client.get(location.split("?")[0] + "?lang=en").text
        assert "Verified in log at index" in public
        assert re.search(r'href="/v1/trust/bundle/\d+"', public)
        assert "2026 上海马拉松" in client.get("/registry/retirements?q=马拉松").text
        assert "2026 上海马拉松" not in client.get("/registry/retirements?purpose=voluntary").text

    def test_errors_beside_the_field(self, client, issued):
        login_as(client, issued.c.owner.token)
        page = client.get("/console/registry").text
        base = {
            "account_id": str(issued.owner_account),
            "batch_id": str(issued.batch_id),
            "purpose": "voluntary",
            "beneficiary": "x",
            "idempotency_key": _key(page, "retire"),
        }
        for quantity in ("lots", "0", "501"):
            page = _post(client, "/console/registry/retire", {**base, "quantity": quantity})
            assert page.status_code in (409, 422), quantity
            assert 'id="r-quantity-error"' in page.text or "form-error" in page.text
        page = _post(
            client, "/console/registry/retire", {**base, "quantity": "1", "beneficiary": ""}
        )
        assert page.status_code == 422 and 'id="e-beneficiary"' in page.text
        page = _post(
            client,
            "/console/registry/transfer",
            {**base, "quantity": "1", "to_org": "99999999"},
        )
        assert page.status_code == 422 and 'id="e-to_org"' in page.text

    def test_transfer_and_operator_cancellation(self, client, session, issued):
        login_as(client, issued.c.owner.token)
        page = client.get("/console/registry").text
        done = _post(
            client,
            "/console/registry/transfer",
            {
                "account_id": str(issued.owner_account),
                "batch_id": str(issued.batch_id),
                "quantity": "100",
                "to_org": str(issued.c.buyer_org),
                "idempotency_key": _key(page, "transfer"),
            },
        )
        assert done.status_code == 303, done.text[:2000]
        buyer = registry_service.account_for_organisation(session, issued.c.buyer_org)
        assert (
            sum(h.quantity for h in registry_service.holdings(session, account_id=buyer.id)) == 100
        )

        # the owner cannot cancel; the operator can, with a reason
        page = _post(
            client,
            "/console/registry/cancel",
            {
                "account_id": str(buyer.id),
                "batch_id": str(issued.batch_id),
                "quantity": "1",
                "reason": "x",
                "idempotency_key": "k",
            },
        )
        assert page.status_code == 403
        login_as(client, issued.c.operator.token)
        page = client.get(f"/console/registry?account={buyer.id}").text
        assert 'id="cancel"' in page
        data = {
            "account_id": str(buyer.id),
            "batch_id": str(issued.batch_id),
            "quantity": "5",
            "reason": "",
            "idempotency_key": _key(page, "cancel"),
        }
        page = _post(client, "/console/registry/cancel", data)
        assert page.status_code == 422 and 'id="e-reason"' in page.text
        done = _post(client, "/console/registry/cancel", {**data, "reason": "over-issued"})
        assert done.status_code == 303
        assert registry_service.totals(session)["cancelled"] == 5
        assert registry_service.check(session) == []

    def test_staff_without_organisation_and_bad_operation(self, client, issued):
        login_as(client, issued.c.owner.token)
        assert _post(client, "/console/registry/explode", {}).status_code == 404
        page = _post(client, "/console/registry/retire", {"account_id": "x"})
        assert page.status_code == 422


def test_nul_characters_never_reach_the_database(client, session, issued):
    login_as(client, issued.c.owner.token)
    page = client.get("/console/registry").text
    done = _post(
        client,
        "/console/registry/retire",
        {
            "account_id": str(issued.owner_account),
            "batch_id": str(issued.batch_id),
            "quantity": "1",
            "purpose": "voluntary",
            "beneficiary": "绿\x00色",
            "note": "\x00",
            "idempotency_key": _key(page, "retire"),
        },
    )
    assert done.status_code == 303, done.text[:1000]
    assert registry_service.list_retirements(session)[0].beneficiary == "绿色"
