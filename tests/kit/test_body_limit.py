"""Request bodies over the ceiling get 413 before anything buffers them: declared or chunked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tanhui.kit.settings import get_settings

MB = 2**20
PUSH = "/v1/partner/activities"


@pytest.fixture
def small_client(session_factory, monkeypatch) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    from tanhui.app import create_app

    monkeypatch.setenv("TANHUI_MAX_REQUEST_MB", "1")
    get_settings.cache_clear()
    try:
        app = create_app(session_factory=session_factory)
    finally:
        monkeypatch.delenv("TANHUI_MAX_REQUEST_MB")
        get_settings.cache_clear()
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _too_large(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "request_too_large"


def test_a_declared_length_over_the_ceiling_is_refused_unread(small_client: TestClient) -> None:
    _too_large(small_client.post(PUSH, content=b"x" * (MB + 1)))


def test_a_chunked_body_is_counted_as_it_arrives(small_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"y" * (100 * 1024)

    _too_large(small_client.post(PUSH, content=chunks()))
    # An endpoint whose body FastAPI parses into a model answers the same, not 400.
    _too_large(small_client.post("/v1/auth/otp", content=chunks()))


def test_forms_and_uploads_meet_the_same_ceiling_and_get_a_page(small_client: TestClient) -> None:
    # A page is answered with a page, in the reader's language, not with a problem document.
    page = small_client.post("/login", data={"phone": "1" * (MB + 10)})
    assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
    assert "请求过大" in page.text
    upload = {"file": ("big.csv", b"z" * (MB + 10), "text/csv")}
    page = small_client.post("/console/projects/1/documents?lang=en", files=upload)
    assert page.status_code == 413 and "The request is too large" in page.text
    # The API under /v1 keeps its problem documents.
    _too_large(small_client.post("/v1/projects/1/documents", files=upload))


def test_a_body_under_the_ceiling_goes_on_to_the_handler(small_client: TestClient) -> None:
    response = small_client.post(PUSH, content=b"x" * (MB - 1))
    assert response.status_code == 401  # unsigned: judged by the endpoint, not the ceiling
    assert response.json()["code"] == "missing_signature_headers"


def test_an_app_that_does_not_catch_the_overflow_still_answers_413() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tanhui.kit.body_limit import BodyLimit

    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    app = BodyLimit(Starlette(routes=[Route("/", echo, methods=["POST"])]), max_bytes=1000)

    def chunks() -> Iterator[bytes]:
        yield b"a" * 600
        yield b"b" * 600

    with TestClient(app, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        _too_large(client.post("/", content=chunks()))
        assert client.post("/", content=b"c" * 999).text == "999"
