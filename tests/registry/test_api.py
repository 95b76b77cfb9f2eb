"""The registry through the API: transfers, retirements, cancellations, idempotency, roles, public views."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tanhui.ledger import service as ledger_service
from tanhui.registry import service as registry_service
from tanhui.trust import service as trust_service
from tests.fixtures.identity import auth
from tests.fixtures.projects import Cast, cast, registered_project


@pytest.fixture
def c(session: Session) -> Cast:
    return cast(session)


@pytest.fixture
def batch_id(session: Session, c: Cast) -> int:
    project = registered_project(session, c)
    owner = registry_service.account_for_organisation(session, c.owner_org)
    batch = registry_service.issue(
        session,
        c.operator.principal,
        account_id=owner.id,
        quantity=500,
        vintage=2026,
        project_number=project.id,
        source_kind="project_report",
        source_ref="test",
        idempotency_key="issue-test",
    )
    session.flush()
    return batch.id


def write(
    client: httpx.Client, path: str, who: Any, body: dict[str, Any], key: str | None
) -> httpx.Response:
    headers = auth(who.token) if who is not None else {}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/v1/registry/{path}", json=body, headers=headers)


def live_blocks(client: httpx.Client, batch_id: int) -> list[tuple[int, int, int, str, int]]:
    rows = client.get("/v1/registry/blocks", params={"batch_id": batch_id}).json()
    return [
        (b["serial_start"], b["serial_end"], b["quantity"], b["status"], b["account_id"])
        for b in rows
    ]


def test_transfer_retire_cancel_and_public_views(
    client: httpx.Client, session: Session, c: Cast, batch_id: int
) -> None:
    owner_acc = client.get("/v1/registry/accounts/mine", headers=auth(c.owner.token)).json()["id"]
    body = {"batch_id": batch_id, "quantity": 120, "to_organisation_id": c.buyer_org}
    assert write(client, "transfers", None, body, "t1").status_code == 401
    assert write(client, "transfers", c.owner, body, None).status_code == 422
    assert (
        write(client, "transfers", c.buyer, body | {"from_account_id": owner_acc}, "t1").status_code
        == 403
    )
    r = write(client, "transfers", c.owner, body | {"to_account_id": 1}, "t1")
    assert r.status_code == 422  # exactly one target
    r = write(client, "transfers", c.owner, body, "t1")
    assert r.status_code == 201, r.text
    event = r.json()
    prefix = event["serial_prefix"]
    assert event["serials"] == [f"{prefix}-000001-000120"]
    buyer_acc = event["to_account_id"]
    again = write(client, "transfers", c.owner, body, "t1")
    assert again.status_code == 201 and again.json()["event_id"] == event["event_id"]
    r = write(client, "transfers", c.owner, body | {"quantity": 121}, "t1")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    r = write(client, "transfers", c.owner, body | {"quantity": 381}, "t2")
    assert r.status_code == 409 and r.json()["code"] == "insufficient_credits"
    r = write(client, "transfers", c.owner, body | {"quantity": 0}, "t3")
    assert r.status_code == 422
    r = write(
        client,
        "transfers",
        c.owner,
        {"batch_id": 999999, "quantity": 1, "to_organisation_id": c.buyer_org},
        "t4",
    )
    assert r.status_code == 404
    r = write(
        client,
        "transfers",
        c.owner,
        {"batch_id": batch_id, "quantity": 1, "to_organisation_id": 999999},
        "t5",
    )
    assert r.status_code == 404
    assert live_blocks(client, batch_id) == [
        (1, 120, 120, "active", buyer_acc),
        (121, 500, 380, "active", owner_acc),
    ]

    retire = {
        "batch_id": batch_id,
        "quantity": 42,
        "purpose": "event_neutrality",
        "beneficiary": "2026 上海马拉松 Shanghai Marathon",
        "note": "赛事碳中和",
    }
    r = write(client, "retirements", c.buyer, retire | {"purpose": "greenwash"}, "r0")
    assert r.status_code == 422 and r.json()["field"] == "purpose"
    r = write(client, "retirements", c.buyer, retire | {"account_id": owner_acc}, "r1")
    assert r.status_code == 403
    r = write(client, "retirements", c.buyer, retire, "r1")
    assert r.status_code == 201, r.text
    rt = r.json()
    assert rt["retirement_no"].endswith(f"-{rt['event_id']:06d}") and rt[
        "retirement_no"
    ].startswith("RT-")
    assert rt["serials"] == [f"{prefix}-000001-000042"]
    assert write(client, "retirements", c.buyer, retire, "r1").json()["event_id"] == rt["event_id"]

    cancel = {
        "account_id": owner_acc,
        "batch_id": batch_id,
        "quantity": 3,
        "reason": "Meter M3 faulty",
    }
    assert write(client, "cancellations", c.owner, cancel, "c1").status_code == 403
    assert write(client, "cancellations", c.buyer, cancel, "c1").status_code == 403
    r = write(client, "cancellations", c.operator, cancel | {"reason": " "}, "c1")
    assert r.status_code == 422
    r = write(client, "cancellations", c.operator, cancel, "c1")
    assert r.status_code == 201 and r.json()["note"] == "Meter M3 faulty"

    assert live_blocks(client, batch_id) == [
        (1, 42, 42, "retired", buyer_acc),
        (43, 120, 78, "active", buyer_acc),
        (121, 123, 3, "cancelled", owner_acc),
        (124, 500, 377, "active", owner_acc),
    ]
    history = client.get(
        "/v1/registry/blocks", params={"batch_id": batch_id, "include_closed": True}
    ).json()
    assert len(history) == 4 + 3  # the issued block and the two blocks split later, closed
    batch = next(b for b in client.get("/v1/registry/batches").json() if b["batch_id"] == batch_id)
    assert (batch["issued"], batch["active"], batch["retired"], batch["cancelled"]) == (
        500,
        455,
        42,
        3,
    )
    assert (
        client.get("/v1/registry/batches", params={"q": prefix}).json()[0]["batch_id"] == batch_id
    )
    assert client.get("/v1/registry/batches", params={"q": "TH-1999"}).json() == []
    kinds = [e["kind"] for e in client.get(f"/v1/registry/batches/{batch_id}/events").json()]
    assert kinds == ["issuance", "transfer", "retirement", "cancellation"]

    listed = client.get(
        "/v1/registry/retirements", params={"purpose": "event_neutrality", "beneficiary": "马拉松"}
    ).json()
    assert [x["retirement_no"] for x in listed] == [rt["retirement_no"]]
    assert listed[0]["proof"]["status"] == "pending"
    trust_service.integrate_all(session)
    one = client.get(f"/v1/registry/retirements/{rt['retirement_no']}").json()
    assert one["proof"]["status"] == "integrated" and one["proof"]["leaf_index"] is not None
    assert client.get("/v1/registry/retirements/RT-2026-999999").status_code == 404
    assert client.get("/v1/registry/retirements", params={"purpose": "x"}).status_code == 422

    holdings = client.get("/v1/registry/holdings", params={"account_type": "buyer"}).json()
    assert [(h["account_id"], h["quantity"]) for h in holdings] == [(buyer_acc, 78)]
    for path in ("batches", "blocks", "holdings", "retirements"):
        for r in (
            client.get(f"/v1/registry/{path}", params={"format": "csv"}),
            client.get(f"/v1/registry/{path}/export.csv"),
        ):
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
            assert len(rows) >= 2
    assert client.get("/v1/registry/batches", params={"format": "xml"}).status_code == 422

    assert ledger_service.check(session) == []
    assert registry_service.check(session) == []
    # every registry event is a trust-log leaf and re-encodes to the same payload (audit)
    events = registry_service.events_of_batch(session, batch_id)
    encoded = registry_service.reencode(session, [str(e.id) for e in events])
    for e in events:
        assert trust_service.leaf_for(session, f"registry.{e.kind}", str(e.id)) is not None
        assert encoded[str(e.id)]["quantity"] == e.quantity


def test_check_names_a_tampered_block(session: Session, c: Cast, batch_id: int) -> None:
    from sqlalchemy import update

    from tanhui.registry.models import Block

    assert registry_service.check(session) == []
    session.execute(
        update(Block).where(Block.batch_id == batch_id).values(serial_end=499, quantity=499)
    )
    kinds = {p.kind for p in registry_service.check(session)}
    assert {"serial_tiling", "registry_ledger_mismatch"} <= kinds
