"""The methodology HTTP API through the ASGI app."""

from __future__ import annotations

import hashlib

import httpx
from sqlalchemy.orm import Session

from tanhui.methodology.loader import CATALOGUE_DIR
from tests.fixtures.identity import auth, staff

METRO_V1 = (CATALOGUE_DIR / "shenzhen-metro@1.toml").read_text(encoding="utf-8")
METRO_V2 = (
    METRO_V1.replace('version = "1"', 'version = "2"')
    .replace("effective_from = 2021-12-16", "effective_from = 2026-01-01")
    .replace('value = "46.7"', 'value = "50.0"')
)


class TestRead:
    def test_list_has_one_object_per_version(self, client: httpx.Client) -> None:
        r = client.get("/v1/methodologies")
        assert r.status_code == 200
        items = r.json()
        keys = {(i["id"], i["version"]) for i in items}
        assert {("wuhan-bike-share", "1"), ("wuhan-bike-share", "2")} <= keys
        for item in items:
            assert {
                "id",
                "version",
                "scenario",
                "region",
                "kind",
                "inputs",
                "effective_from",
            } <= set(item)

    def test_unverified_is_shown_as_such(self, client: httpx.Client) -> None:
        r = client.get("/v1/methodologies/cn-digital-refuelling")
        version = r.json()["versions"][0]
        assert version["status"] == "unverified"
        assert version["parameters"]["per_refuel"]["status"] == "unverified"

    def test_all_versions(self, client: httpx.Client) -> None:
        r = client.get("/v1/methodologies/wuhan-bike-share")
        assert [v["version"] for v in r.json()["versions"]] == ["1", "2"]
        assert client.get("/v1/methodologies/atlantis").status_code == 404

    def test_anyone_can_check_a_versions_sha256_against_its_text(
        self, client: httpx.Client, session: Session
    ) -> None:
        shipped = client.get("/v1/methodologies/shenzhen-metro/versions/1.toml")
        assert shipped.status_code == 200, shipped.text
        assert shipped.headers["content-type"].startswith("application/toml")
        assert shipped.content == METRO_V1.encode("utf-8")
        described = client.get("/v1/methodologies/shenzhen-metro").json()["versions"][0]
        assert hashlib.sha256(shipped.content).hexdigest() == described["sha256"]
        assert shipped.headers["x-content-sha256"] == described["sha256"]
        # An uploaded version too, byte for byte as the operator sent it.
        admin = staff(session, "operator_admin")
        up = client.post("/v1/methodologies", json={"toml": METRO_V2}, headers=auth(admin.token))
        assert up.status_code == 201, up.text
        uploaded = client.get("/v1/methodologies/shenzhen-metro/versions/2.toml")
        assert uploaded.content == METRO_V2.encode("utf-8")
        assert hashlib.sha256(uploaded.content).hexdigest() == up.json()["sha256"]
        missing = client.get("/v1/methodologies/shenzhen-metro/versions/9.toml")
        assert missing.status_code == 404 and missing.json()["code"]

    def test_calculate_dry_run_with_trace(self, client: httpx.Client) -> None:
        r = client.post(
            "/v1/methodologies/shenzhen-metro/calculate",
            json={"inputs": {"distance_km": "10"}, "at": "2025-06-01"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["reduction_mg"], body["version"], body["eligible"]) == (467000, "1", True)
        assert body["trace"][0]["values"]["metro_reduction_factor"]["source"]["address"]

    def test_bad_input_is_a_problem_not_a_500(self, client: httpx.Client) -> None:
        for inputs in ({"distance_km": "abc"}, {"distance_km": "999"}, {}):
            r = client.post("/v1/methodologies/shenzhen-metro/calculate", json={"inputs": inputs})
            assert r.status_code == 422
            assert r.json()["code"] == "invalid_quantity"
            assert r.json()["field"] == "distance_km"
        r = client.post(
            "/v1/methodologies/shenzhen-metro/calculate",
            json={"inputs": {"distance_km": "1"}, "at": "2025-06-01T08:00:00"},
        )
        assert r.status_code == 422


class TestOperator:
    def test_upload_requires_an_operator(self, client: httpx.Client, session: Session) -> None:
        assert client.post("/v1/methodologies", json={"toml": METRO_V2}).status_code == 401
        reviewer = staff(session, "reviewer")
        r = client.post("/v1/methodologies", json={"toml": METRO_V2}, headers=auth(reviewer.token))
        assert r.status_code == 403

    def test_upload_then_new_records_use_it_and_old_keep_theirs(
        self, client: httpx.Client, session: Session
    ) -> None:
        admin = staff(session, "operator_admin")
        r = client.post("/v1/methodologies", json={"toml": METRO_V2}, headers=auth(admin.token))
        assert r.status_code == 201, r.text
        assert r.json()["origin"] == "upload"
        calc = "/v1/methodologies/shenzhen-metro/calculate"
        new = client.post(calc, json={"inputs": {"distance_km": "10"}, "at": "2026-02-01"}).json()
        old = client.post(calc, json={"inputs": {"distance_km": "10"}, "at": "2025-02-01"}).json()
        assert (new["version"], new["reduction_mg"]) == ("2", 500000)
        assert (old["version"], old["reduction_mg"]) == ("1", 467000)
        diff = client.get(
            "/v1/methodologies/shenzhen-metro/diff", params={"a": "1", "b": "2"}
        ).json()
        fields = {c["field"] for c in diff["changes"]}
        assert "parameters.metro_reduction_factor.value" in fields
        again = client.post("/v1/methodologies", json={"toml": METRO_V2}, headers=auth(admin.token))
        assert again.status_code == 409

    def test_bad_upload_is_422_with_errors_by_line_and_field(
        self, client: httpx.Client, session: Session
    ) -> None:
        admin = staff(session, "operator_admin")
        bad = METRO_V2.replace(
            'expr = "metro_reduction_factor * distance_km"', 'expr = "x * distance_km"'
        )
        r = client.post("/v1/methodologies", json={"toml": bad}, headers=auth(admin.token))
        assert r.status_code == 422
        errors = r.json()["errors"]
        assert errors[0]["field"] == "steps[0].expr"
        assert errors[0]["line"] == next(
            i for i, x in enumerate(bad.splitlines(), 1) if "x * distance_km" in x
        )
        garbage = client.post(
            "/v1/methodologies", json={"toml": "[[[ nope"}, headers=auth(admin.token)
        )
        assert garbage.status_code == 422 and garbage.json()["errors"][0]["line"] == 1

    def test_assignment(self, client: httpx.Client, session: Session) -> None:
        admin = staff(session, "operator_admin")
        body = {
            "scenario": "metro",
            "methodology_id": "wuhan-metro",
            "effective_from": "2025-01-01",
        }
        assert client.post("/v1/methodologies/assignments", json=body).status_code == 401
        r = client.post("/v1/methodologies/assignments", json=body, headers=auth(admin.token))
        assert r.status_code == 201, r.text
        listed = client.get("/v1/methodologies/assignments").json()
        assert [(a["scenario"], a["methodology_id"]) for a in listed] == [("metro", "wuhan-metro")]
        bad = {**body, "scenario": "bus"}
        assert (
            client.post(
                "/v1/methodologies/assignments", json=bad, headers=auth(admin.token)
            ).status_code
            == 422
        )
