"""Template rendering: one Jinja2 environment, the request's language, CSRF token and principal.

`render()` is the only way a page leaves the web part, so every page gets the same <html lang>,
the language cookie and the CSRF cookie.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import ChainableUndefined, Environment, FileSystemLoader, select_autoescape

from tanhui import __version__
from tanhui.web import charts, formatting, i18n, labels, security

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "svg"]),
    extensions=["jinja2.ext.i18n"],
    # Service results are dicts whose optional keys may be absent: an absent key renders as empty.
    undefined=ChainableUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.install_gettext_callables(  # type: ignore[attr-defined]
    i18n.jinja_gettext, i18n.jinja_ngettext, newstyle=False
)
REWARD_ICONS = STATIC / "rewards"
CATEGORY_ICONS = {
    "green_travel": "metro.svg",
    "daily_services": "coffee.svg",
    "cultural_goods": "tote.svg",
    "lucky_bags": "bag.svg",
    "other_goods": "tree.svg",
    "props": "prop.svg",
}


def reward_image(reward: Any) -> str:
    """The reward's bundled icon when it names one that ships with the platform, else its category's.

    Only names of files shipped under static/rewards are used: a page never loads an image from
    elsewhere (nothing is fetched from the internet, and a merchant's URL could track citizens).
    """
    get = reward.get if isinstance(reward, dict) else lambda key: getattr(reward, key, None)
    name = str(get("image") or "")
    if not name or "/" in name or not (REWARD_ICONS / name).is_file():
        name = CATEGORY_ICONS.get(str(get("category") or ""), "bag.svg")
    return f"/static/rewards/{name}"


def form_key() -> str:
    """A fresh idempotency key for a form: the form sent twice (a double click, a reload) is one
    request to the service."""
    return secrets.token_urlsafe(16)


env.globals.update(charts=charts, version=__version__, reward_image=reward_image, form_key=form_key)


def _lang_filter(fn: Any) -> Any:
    def wrapped(value: Any, *args: Any) -> Any:
        return fn(value, i18n.current(), *args)

    return wrapped


env.filters.update(
    mass=_lang_filter(formatting.mass),
    integer=_lang_filter(formatting.integer),
    money=_lang_filter(formatting.money),
    when=_lang_filter(formatting.when),
    scenario_name=_lang_filter(labels.scenario_name),
    region_name=_lang_filter(labels.region_name),
)


def _route_paths(request: Request) -> frozenset[str]:
    app = request.scope.get("app")
    routes = getattr(app, "routes", [])
    return frozenset(str(getattr(r, "path", "")) for r in routes)


def lang_of(request: Request) -> str:
    return i18n.pick(request.query_params.get("lang"), request.cookies.get(i18n.LANG_COOKIE))


def url_with(request: Request, **params: str) -> str:
    query = dict(request.query_params)
    query.update(params)
    return request.url.path + "?" + urlencode(query)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    principal: Any = None,
) -> HTMLResponse:
    lang = lang_of(request)
    token = i18n.set_current(lang)
    csrf = security.token_for(request)
    try:
        values: dict[str, Any] = {
            "request": request,
            "lang": lang,
            "html_lang": i18n.HTML_LANG[lang],
            "other_lang": "en" if lang == "zh" else "zh",
            "csrf_token": csrf,
            "csrf_field": security.CSRF_FIELD,
            "principal": principal,
            "errors": {},
            "form": {},
            "flash": None,
            "url_with": lambda **p: url_with(request, **p),
            # Pages of parts built separately (projects, registry) are linked only once they exist.
            "routes": _route_paths(request),
        }
        values.update(context or {})
        html = env.get_template(template).render(values)
    finally:
        i18n.reset_current(token)
    response = HTMLResponse(html, status_code=status_code)
    set_common_cookies(request, response, lang, csrf)
    return response


def set_common_cookies(request: Request, response: Any, lang: str, csrf: str | None = None) -> None:
    if request.query_params.get("lang") in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True
        )
    if csrf and request.cookies.get(security.CSRF_COOKIE) != csrf:
        response.set_cookie(security.CSRF_COOKIE, csrf, samesite="lax", httponly=True)
    # Pages show personal data: keep them out of shared caches.
    response.headers.setdefault("Cache-Control", "no-store")


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
