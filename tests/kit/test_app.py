from __future__ import annotations

import re
from datetime import datetime

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from tanhui.kit.db import UTCDateTime
from tanhui.kit.errors import Conflict


class TestShell:
    def test_healthz_checks_the_database(self, client: TestClient) -> None:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"

    def test_openapi_is_published(self, client: TestClient) -> None:
        spec = client.get("/openapi.json").json()
        assert spec["info"]["title"].startswith("Tanhui")
        assert "/v1/ledger/assets" in spec["paths"]

    def test_unknown_route_is_a_problem_document(self, client: TestClient) -> None:
        response = client.get("/v1/nowhere")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert {body["code"], body["status"]} == {"not_found", 404}

    def test_base_assets_are_seeded_by_the_migration(self, client: TestClient) -> None:
        codes = {a["code"] for a in client.get("/v1/ledger/assets").json()}
        assert {"CO2E_MG", "POINT", "CNY_FEN"} <= codes


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int


@pytest.fixture
def probe_app(app: FastAPI) -> FastAPI:
    router = APIRouter()

    @router.post("/probe")
    def probe(body: _Body) -> dict[str, int]:
        if body.amount == 409:
            raise Conflict("taken", code="taken", field="amount")
        if body.amount == 500:
            raise RuntimeError("boom")
        if body.amount == 422:
            from sqlalchemy.exc import DataError

            raise DataError("INSERT ...", {}, Exception("value out of range"))
        return {"amount": body.amount}

    app.include_router(router)
    return app


class TestErrors:
    @pytest.fixture
    def probe(self, probe_app: FastAPI, session: Session) -> TestClient:
        return TestClient(probe_app, raise_server_exceptions=False)

    def test_validation_error_names_the_field(self, probe: TestClient) -> None:
        body = probe.post("/probe", json={"amount": "lots"}).json()
        assert (body["status"], body["code"], body["field"]) == (422, "invalid_input", "amount")
        assert body["errors"][0]["field"] == "amount"

    def test_extra_fields_are_refused(self, probe: TestClient) -> None:
        body = probe.post("/probe", json={"amount": 1, "evil": True}).json()
        assert (body["status"], body["field"]) == (422, "evil")

    def test_malformed_json_is_422(self, probe: TestClient) -> None:
        response = probe.post(
            "/probe", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 422

    def test_business_error_keeps_code_and_field(self, probe: TestClient) -> None:
        body = probe.post("/probe", json={"amount": 409}).json()
        assert (body["status"], body["code"], body["field"]) == (409, "taken", "amount")

    def test_a_value_the_database_refuses_is_422(self, probe: TestClient) -> None:
        body = probe.post("/probe", json={"amount": 422}).json()
        assert (body["status"], body["code"]) == (422, "invalid_input")

    def test_unexpected_error_is_still_a_problem_document(self, probe: TestClient) -> None:
        response = probe.post("/probe", json={"amount": 500})
        assert response.status_code == 500
        assert response.json()["code"] == "internal_error"
        assert "boom" not in response.text


class TestTimestamps:
    def test_naive_datetimes_are_refused(self) -> None:
        from sqlalchemy.dialects import sqlite

        with pytest.raises(ValueError, match="naive"):
            UTCDateTime().process_bind_param(datetime(2026, 1, 1), sqlite.dialect())


@pytest.mark.parametrize(
    "path", ["/", "/about", "/login", "/docs/partners", "/registry", "/console/login"]
)
def test_pages_load_nothing_from_the_internet(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    external = re.findall(
        r'<(?:script|link|img|iframe)[^>]+(?:src|href)="(?:https?:)?//[^"]+"', page.text
    )
    assert external == []


def test_cdn_backed_api_pages_are_off(client: TestClient) -> None:
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
