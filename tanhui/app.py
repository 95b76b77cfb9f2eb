"""The ASGI application: every part's routes under /v1, one error format, one transaction per request."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tanhui import __version__, wiring
from tanhui.activity import api as activity_api
from tanhui.identity import api as identity_api
from tanhui.incentives import api as incentives_api
from tanhui.kit import migrate, platform_settings
from tanhui.kit.body_limit import BodyLimit
from tanhui.kit.db import default_session_factory, read_only_factory, session_scope
from tanhui.kit.http import get_session, install_error_handlers
from tanhui.kit.runtime import settle_collector
from tanhui.kit.settings import get_settings
from tanhui.ledger import api as ledger_api
from tanhui.mall import api as mall_api
from tanhui.methodology import api as methodology_api
from tanhui.projects import api as projects_api
from tanhui.registry import api as registry_api
from tanhui.trust import api as trust_api
from tanhui.web import views as web_views

ROUTERS: list[APIRouter] = [
    activity_api.router,
    identity_api.router,
    incentives_api.router,
    ledger_api.router,
    mall_api.router,
    methodology_api.router,
    projects_api.router,
    registry_api.router,
    trust_api.router,
    *web_views.routers,
]

health = APIRouter(tags=["health"])


@health.get("/healthz", summary="Liveness and database check")
def healthz(session: Session = Depends(get_session)) -> dict[str, Any]:
    session.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}


def create_app(session_factory: sessionmaker[Session] | None = None) -> FastAPI:
    wiring.install()
    app = FastAPI(
        title="Tanhui 碳惠",
        version=__version__,
        description="Carbon inclusion (碳普惠) platform API. Errors are RFC 9457 problem documents.",
        openapi_url="/openapi.json",
        # FastAPI's Swagger and ReDoc pages load their scripts from a CDN; nothing may be fetched at
        # run time, so the API is described by /openapi.json and the partner guide at /docs/partners.
        docs_url=None,
        redoc_url=None,
        lifespan=trust_api.lifespan if session_factory is None else None,  # tests integrate by hand
    )
    if session_factory is None:
        # Started by uvicorn or `tanhui serve`: refuse a database without the current schema (a
        # clear message here, not a missing table on the first request) and a time zone the stored
        # data was not kept in.
        migrate.require_current(default_session_factory().kw["bind"])
        with session_scope() as session:
            platform_settings.check_timezone(session, get_settings().timezone)
    app.state.session_factory = session_factory or default_session_factory()
    app.state.read_session_factory = read_only_factory(app.state.session_factory)
    install_error_handlers(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=get_settings().max_request_mb * 2**20,
        respond=web_views.too_large,
    )
    app.include_router(health)
    for router in ROUTERS:
        app.include_router(router)
    web_views.mount(app)
    settle_collector()
    return app
