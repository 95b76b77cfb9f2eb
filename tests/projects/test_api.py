"""The project path through the API with every role: lifecycle, forbidden moves, reports, issuance."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tanhui.ledger import service as ledger_service
from tanhui.registry import service as registry_service
from tests.fixtures.identity import auth
from tests.fixtures.projects import PV_METHODOLOGY, Cast, cast

TONNE = 1_000_000_000


def project_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "张江屋顶光伏",
        "project_type": "rooftop_pv",
        "methodology_id": PV_METHODOLOGY[0],
        "methodology_version": PV_METHODOLOGY[1],
        "location": "张江路 88 号",
        "district": "上海市浦东新区",
        "capacity_w": 800_000,
        "crediting_start": "2025-01-01",
        "crediting_end": "2034-12-31",
        "description": "Rooftop PV on five factory roofs",
    }
    body.update(overrides)
    return body


@pytest.fixture
def c(session: Session) -> Cast:
    return cast(session)


def post(client: httpx.Client, url: str, who: Any, body: Any = None, **kw: Any) -> httpx.Response:
    headers = {**(auth(who.token) if who is not None else {}), **kw.pop("headers", {})}
    return client.post(url, json=body, headers=headers, **kw)


class TestProjectLifecycle:
    def test_every_transition_and_role(self, client: httpx.Client, c: Cast) -> None:
        assert post(client, "/v1/projects", None, project_body()).status_code == 401
        r = post(client, "/v1/projects", c.verifier, project_body())
        assert r.status_code == 403
        r = post(client, "/v1/projects", c.owner, project_body(project_type="spaceship"))
        assert r.status_code == 422 and r.json()["field"] == "project_type"
        r = post(client, "/v1/projects", c.owner, project_body(methodology_id="nope"))
        assert r.status_code == 422 and r.json()["code"] == "unknown_methodology"
        r = post(client, "/v1/projects", c.owner, project_body(crediting_end="2024-01-01"))
        assert r.status_code == 422
        r = post(client, "/v1/projects", c.owner, project_body())
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        assert r.json()["status"] == "draft"
        url = f"/v1/projects/{pid}"

        # draft: private, editable by its owner only
        assert client.get(url).status_code == 404
        assert client.get(url, headers=auth(c.other_owner.token)).status_code == 404
        r = client.patch(url, json={"location": "张江路 99 号"}, headers=auth(c.owner.token))
        assert r.status_code == 200 and r.json()["location"] == "张江路 99 号"
        r = client.patch(url, json={"location": "x"}, headers=auth(c.other_owner.token))
        assert r.status_code == 403

        # draft: only the owner submits; nobody validates or registers a draft
        assert post(client, f"{url}/submit", c.other_owner).status_code == 403
        assert post(client, f"{url}/submit", c.operator).status_code == 403
        assert post(client, f"{url}/validate", c.verifier).status_code == 403  # not assigned
        assert post(client, f"{url}/register", c.owner).status_code == 403
        r = post(client, f"{url}/register", c.operator)
        assert r.status_code == 409 and r.json()["code"] == "invalid_transition"
        r = post(client, f"{url}/assign-verifier", c.operator, {"verifier_org_id": c.verifier_org})
        assert r.status_code == 409 and r.json()["code"] == "invalid_transition"
        assert post(client, f"{url}/submit", c.owner).json()["status"] == "submitted"
        assert post(client, f"{url}/submit", c.owner).status_code == 409
        r = client.patch(url, json={"location": "x"}, headers=auth(c.owner.token))
        assert r.status_code == 409

        # submitted: the operator assigns a verifier organisation
        body = {"verifier_org_id": c.verifier_org}
        assert post(client, f"{url}/assign-verifier", c.owner, body).status_code == 403
        assert post(client, f"{url}/assign-verifier", c.verifier, body).status_code == 403
        r = post(client, f"{url}/assign-verifier", c.operator, {"verifier_org_id": c.buyer_org})
        assert r.status_code == 422 and r.json()["field"] == "verifier_org_id"
        r = post(client, f"{url}/assign-verifier", c.operator, body)
        assert r.status_code == 200 and r.json()["verifier_org_id"] == c.verifier_org
        assert post(client, f"{url}/validate", c.other_verifier).status_code == 403
        assert post(client, f"{url}/validate", c.owner).status_code == 403
        assert post(client, f"{url}/validate", c.operator).status_code == 403
        assert post(client, f"{url}/register", c.operator).status_code == 409
        assert client.get(url, headers=auth(c.verifier.token)).status_code == 200
        r = post(client, f"{url}/validate", c.verifier)
        assert r.json()["status"] == "validated"

        # validated: only the operator registers or rejects; the verifier's review is done
        assert post(client, f"{url}/validate", c.verifier).status_code == 409
        r = post(client, f"{url}/reject", c.verifier, {"reason": "late doubts"})
        assert r.status_code == 409
        assert post(client, f"{url}/register", c.verifier).status_code == 403
        assert post(client, f"{url}/register", c.owner).status_code == 403
        r = post(client, f"{url}/register", c.operator)
        assert r.json()["status"] == "registered"
        assert post(client, f"{url}/register", c.operator).status_code == 409
        r = post(client, f"{url}/reject", c.operator, {"reason": "too late"})
        assert r.status_code == 409

        # registered: public, with its whole history (who and when)
        detail = client.get(url).json()
        moves = [
            (t["action"], t["from_status"], t["to_status"], t["actor_role"])
            for t in detail["transitions"]
        ]
        assert moves == [
            ("create", "", "draft", "owner"),
            ("submit", "draft", "submitted", "owner"),
            ("assign_verifier", "submitted", "submitted", "operator"),
            ("validate", "submitted", "validated", "verifier"),
            ("register", "validated", "registered", "operator"),
        ]
        assert all(t["at"] for t in detail["transitions"])
        public = client.get("/v1/registry/projects", params={"district": "浦东"}).json()
        assert [p["id"] for p in public] == [pid]

    def test_rejection_at_each_step(self, client: httpx.Client, c: Cast) -> None:
        def new() -> str:
            r = post(client, "/v1/projects", c.owner, project_body())
            return f"/v1/projects/{r.json()['id']}"

        draft = new()
        assert post(client, f"{draft}/reject", c.owner, {"reason": "x"}).status_code == 403
        r = post(client, f"{draft}/reject", c.operator, {"reason": ""})
        assert r.status_code == 422
        r = post(client, f"{draft}/reject", c.operator, {"reason": "incomplete documents"})
        assert r.json()["status"] == "rejected"
        assert r.json()["rejection_reason"] == "incomplete documents"
        for action in ("submit", "validate", "register"):
            who = {"submit": c.owner, "validate": c.verifier, "register": c.operator}[action]
            assert post(client, f"{draft}/{action}", who).status_code in (403, 409)
        assert post(client, f"{draft}/submit", c.owner).status_code == 409
        assert post(client, f"{draft}/reject", c.operator, {"reason": "again"}).status_code == 409

        submitted = new()
        post(client, f"{submitted}/submit", c.owner)
        post(
            client, f"{submitted}/assign-verifier", c.operator, {"verifier_org_id": c.verifier_org}
        )
        assert (
            post(client, f"{submitted}/reject", c.other_verifier, {"reason": "x"}).status_code
            == 403
        )
        r = post(
            client, f"{submitted}/reject", c.verifier, {"reason": "项目在深圳, 方法学适用于上海"}
        )
        assert r.json()["status"] == "rejected"
        hist = client.get(submitted, headers=auth(c.owner.token)).json()["transitions"]
        assert hist[-1]["actor_role"] == "verifier" and hist[-1]["reason"].startswith("项目")

        validated = new()
        post(client, f"{validated}/submit", c.owner)
        post(
            client, f"{validated}/assign-verifier", c.operator, {"verifier_org_id": c.verifier_org}
        )
        post(client, f"{validated}/validate", c.verifier)
        r = post(client, f"{validated}/reject", c.operator, {"reason": "additionality not shown"})
        assert r.json()["status"] == "rejected"


def registered(client: httpx.Client, c: Cast) -> str:
    r = post(client, "/v1/projects", c.owner, project_body())
    url = f"/v1/projects/{r.json()['id']}"
    post(client, f"{url}/submit", c.owner)
    post(client, f"{url}/assign-verifier", c.operator, {"verifier_org_id": c.verifier_org})
    post(client, f"{url}/validate", c.verifier)
    assert post(client, f"{url}/register", c.operator).json()["status"] == "registered"
    return url


def csv_upload(
    client: httpx.Client,
    url: str,
    who: Any,
    text: str,
    start: str,
    end: str,
    key: str | None = None,
) -> httpx.Response:
    headers = auth(who.token)
    if key:
        headers["Idempotency-Key"] = key
    return client.post(
        f"{url}/reports/csv",
        data={"period_start": start, "period_end": end},
        files={"file": ("readings.csv", text.encode(), "text/csv")},
        headers=headers,
    )


class TestDocuments:
    def test_upload_limits_and_hash(
        self, client: httpx.Client, c: Cast, tmp_path: Any, monkeypatch: Any
    ) -> None:
        from tanhui.kit.settings import get_settings

        monkeypatch.setenv("TANHUI_DATA_DIR", str(tmp_path))
        get_settings.cache_clear()
        try:
            r = post(client, "/v1/projects", c.owner, project_body())
            url = f"/v1/projects/{r.json()['id']}"
            pdf = b"%PDF-1.7\n% feasibility study\n"
            r = client.post(
                f"{url}/documents",
                files={"file": ("可研报告.pdf", pdf, "application/pdf")},
                headers=auth(c.owner.token),
            )
            assert r.status_code == 201, r.text
            import hashlib

            assert r.json()["sha256"] == hashlib.sha256(pdf).hexdigest()
            assert r.json()["size"] == len(pdf)
            stored = list((tmp_path / "uploads").rglob("*.pdf"))
            assert len(stored) == 1 and stored[0].read_bytes() == pdf
            doc = r.json()["id"]
            got = client.get(f"{url}/documents/{doc}", headers=auth(c.owner.token))
            assert got.status_code == 200 and got.content == pdf
            assert client.get(f"{url}/documents/{doc}").status_code == 404  # draft is private
            for name, data, ctype, code in (
                ("x.exe", b"MZ", "application/octet-stream", "unsupported_file_type"),
                ("fake.pdf", b"not a pdf", "application/pdf", "unsupported_file_type"),
                ("empty.txt", b"", "text/plain", "empty_file"),
                ("big.txt", b"a" * (10 * 1024 * 1024 + 1), "text/plain", "file_too_large"),
            ):
                r = client.post(
                    f"{url}/documents",
                    files={"file": (name, data, ctype)},
                    headers=auth(c.owner.token),
                )
                assert r.status_code == 422 and r.json()["code"] == code, (name, r.text)
            r = client.post(
                f"{url}/documents",
                files={"file": ("a.txt", b"hi", "text/plain")},
                headers=auth(c.other_owner.token),
            )
            assert r.status_code == 403
        finally:
            get_settings.cache_clear()


class TestReportsAndIssuance:
    def test_report_verify_approve_issue_and_carry(
        self, client: httpx.Client, session: Session, c: Cast
    ) -> None:
        url = registered(client, c)
        bad = (
            "date,meter_id,kwh\n2025-01-01,M1,100\n2025-13-01,M1,5\n2025-01-02,M1,-3\n"
            "2025-01-02,M1,1.2345\n2024-12-31,M1,1\n2025-01-01,M1,7\nonly,two\n"
        )
        r = csv_upload(client, url, c.owner, bad, "2025-01-01", "2025-01-31")
        assert r.status_code == 422 and r.json()["code"] == "invalid_csv"
        assert [e["line"] for e in r.json()["errors"]] == [3, 4, 5, 6, 7, 8]
        r = csv_upload(client, url, c.owner, "a,b,c\n", "2025-01-01", "2025-01-31")
        assert r.status_code == 422 and r.json()["errors"][0]["line"] == 1

        good = "date,meter_id,kwh\n2025-01-01,M1,4000\n2025-01-01,M2,2000.5\n2025-01-02,M1,3999.5\n"
        assert (
            csv_upload(client, url, c.verifier, good, "2025-01-01", "2025-01-31").status_code == 403
        )
        r = csv_upload(client, url, c.owner, good, "2025-01-01", "2025-01-31", key="jan")
        assert r.status_code == 201, r.text
        report = r.json()
        assert report["inputs"]["kwh"] == "10000"
        assert report["inputs"]["capacity_kw"] == "800"
        assert report["reduction_mg"] == 4_200_000_000  # 10,000 kWh x 0.42 kg/kWh = 4.2 t
        assert report["trace"]["trace"]
        again = csv_upload(client, url, c.owner, good, "2025-01-01", "2025-01-31", key="jan")
        assert again.json()["id"] == report["id"]
        r = csv_upload(
            client,
            url,
            c.owner,
            good.replace("4000", "4001"),
            "2025-01-01",
            "2025-01-31",
            key="jan",
        )
        assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
        r = post(
            client,
            f"{url}/reports",
            c.owner,
            {"period_start": "2025-01-15", "period_end": "2025-02-15", "inputs": {"kwh": "5"}},
        )
        assert r.status_code == 409 and r.json()["code"] == "period_overlap"
        r = post(
            client,
            f"{url}/reports",
            c.owner,
            {"period_start": "2024-12-01", "period_end": "2024-12-31", "inputs": {"kwh": "5"}},
        )
        assert r.status_code == 422 and r.json()["code"] == "outside_crediting_period"
        r = post(
            client,
            f"{url}/reports",
            c.owner,
            {"period_start": "2025-03-01", "period_end": "2025-03-31", "inputs": {"kwh": "abc"}},
        )
        assert r.status_code == 422 and r.json()["field"] == "kwh"

        rurl = f"{url}/reports/{report['id']}"
        key = {"headers": {"Idempotency-Key": "approve-1"}}
        assert post(client, f"{rurl}/verify", c.owner, {}).status_code == 403
        assert post(client, f"{rurl}/verify", c.other_verifier, {}).status_code == 403
        assert post(client, f"{rurl}/verify", c.operator, {}).status_code == 403
        assert post(client, f"{rurl}/approve", c.operator, **key).status_code == 409
        r = post(client, f"{rurl}/verify", c.verifier, {"corrected_inputs": {"kwh": "9000"}})
        assert r.status_code == 422 and r.json()["field"] == "comment"
        r = post(
            client,
            f"{rurl}/verify",
            c.verifier,
            {"corrected_inputs": {"kwh": "9000"}, "comment": "M2 reading on 01-01 was a test run"},
        )
        assert r.status_code == 200
        verified = r.json()
        assert verified["status"] == "verified"
        assert verified["reduction_mg"] == 4_200_000_000  # the original stays
        assert verified["corrected_reduction_mg"] == 3_780_000_000
        assert (
            verified["inputs"]["kwh"] == "10000" and verified["corrected_inputs"]["kwh"] == "9000"
        )
        assert post(client, f"{rurl}/verify", c.verifier, {}).status_code == 409
        assert post(client, f"{rurl}/approve", c.verifier, **key).status_code == 403
        assert post(client, f"{rurl}/approve", c.owner, **key).status_code == 403
        assert post(client, f"{rurl}/approve", c.operator).status_code == 422  # no Idempotency-Key
        r = post(client, f"{rurl}/approve", c.operator, **key)
        assert r.status_code == 200, r.text
        issued = r.json()
        assert issued["status"] == "issued"
        assert (issued["carried_in_mg"], issued["issued_credits"], issued["carried_out_mg"]) == (
            0,
            3,
            780_000_000,
        )
        assert (
            post(client, f"{rurl}/approve", c.operator, **key).json()["batch_id"]
            == issued["batch_id"]
        )
        assert post(client, f"{rurl}/reject", c.operator, {"reason": "x"}).status_code == 409

        # the next report carries the fraction: 0.78 t + 4.2 t = 4.98 t -> 4 credits, 0.98 t carried
        r = post(
            client,
            f"{url}/reports",
            c.owner,
            {"period_start": "2025-02-01", "period_end": "2025-02-28", "inputs": {"kwh": "10000"}},
        )
        second = f"{url}/reports/{r.json()['id']}"
        post(client, f"{second}/verify", c.verifier, {})
        issued2 = post(
            client, f"{second}/approve", c.operator, headers={"Idempotency-Key": "a2"}
        ).json()
        assert (issued2["carried_in_mg"], issued2["issued_credits"], issued2["carried_out_mg"]) == (
            780_000_000,
            4,
            980_000_000,
        )
        assert client.get(url).json()["carry_mg"] == 980_000_000

        # a rejected report frees its period
        r = post(
            client,
            f"{url}/reports",
            c.owner,
            {"period_start": "2025-03-01", "period_end": "2025-03-31", "inputs": {"kwh": "1"}},
        )
        third = f"{url}/reports/{r.json()['id']}"
        assert post(client, f"{third}/reject", c.owner, {"reason": "x"}).status_code == 403
        assert (
            post(client, f"{third}/reject", c.verifier, {"reason": "meter not calibrated"}).json()[
                "status"
            ]
            == "rejected"
        )
        r = post(
            client,
            f"{url}/reports",
            c.owner,
            {"period_start": "2025-03-01", "period_end": "2025-03-31", "inputs": {"kwh": "1"}},
        )
        assert r.status_code == 201

        batches = client.get("/v1/registry/batches").json()
        project_number = int(url.rsplit("/", 1)[1])
        mine = sorted(
            (b for b in batches if b["project_number"] == project_number),
            key=lambda b: b["batch_seq"],
        )
        assert [(b["serial_prefix"], b["issued"]) for b in mine] == [
            (f"TH-2025-{project_number:06d}-001", 3),
            (f"TH-2025-{project_number:06d}-002", 4),
        ]
        blocks = client.get("/v1/registry/blocks", params={"batch_id": mine[0]["batch_id"]}).json()
        assert [
            (b["serial_start"], b["serial_end"], b["quantity"], b["status"]) for b in blocks
        ] == [(1, 3, 3, "active")]
        assert ledger_service.check(session) == []
        assert registry_service.check(session) == []
