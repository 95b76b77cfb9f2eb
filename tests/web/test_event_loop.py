"""Handlers that query the database or hash passwords run in the thread pool, never on the event
loop: one slow request (a password check, a ledger check) must not stall every other request of
its process, partners' batches included."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute

from tanhui.identity import service as identity_service
from tanhui.web import security
from tests.fixtures.identity import PASSWORD
from tests.web.conftest import csrf, staff

# Coroutine endpoints allowed: each only awaits its body, then hands the work to the thread pool.
HANDS_OFF = {"tanhui.activity.api.push_activities"}


def _endpoints(routes: Iterable[BaseRoute]) -> Iterator[Callable[..., Any]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.endpoint
        included = getattr(route, "original_router", None)  # include_router's wrapper
        if included is not None:
            yield from _endpoints(included.routes)


def test_no_endpoint_runs_its_work_on_the_event_loop(app: FastAPI) -> None:
    endpoints = list(_endpoints(app.routes))
    assert len(endpoints) > 100  # the walk reached the routers' routes
    coroutines = {
        f"{e.__module__}.{e.__qualname__}" for e in endpoints if inspect.iscoroutinefunction(e)
    }
    assert coroutines == HANDS_OFF


def test_a_stalled_request_does_not_stall_the_others(
    client: TestClient, session: Session, monkeypatch: Any
) -> None:
    user = staff(session, "reviewer")
    session.flush()
    entered, release = threading.Event(), threading.Event()
    real_login = identity_service.login_staff

    def stalled_login(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(timeout=30)
        return real_login(*args, **kwargs)

    monkeypatch.setattr(identity_service, "login_staff", stalled_login)
    token = csrf(client)
    answers: dict[str, int] = {}

    def log_in() -> None:
        form = {security.CSRF_FIELD: token, "username": user.username, "password": PASSWORD}
        answers["login"] = client.post(
            "/console/login", data=form, follow_redirects=False
        ).status_code

    def other_page() -> None:
        answers["other"] = client.get("/login").status_code

    stalled = threading.Thread(target=log_in)
    stalled.start()
    try:
        assert entered.wait(timeout=10), "the login never reached the password check"
        other = threading.Thread(target=other_page)
        other.start()
        other.join(timeout=10)
        # Still held: had the login run on the event loop, this page could not have been served.
        assert answers.get("other") == 200 and "login" not in answers
    finally:
        release.set()
        stalled.join(timeout=30)
    assert answers["login"] == 303
