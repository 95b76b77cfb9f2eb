"""End-to-end in a real browser (Playwright + Debian's chromium) against a demo platform.

One uvicorn server per session on a fresh SQLite copy filled by the demo seeders. The two journeys
(a citizen; an operator) run at phone and desk widths, in Chinese and English, and leave a
screenshot of every page under test-artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tanhui import demo as demo_module
from tanhui.identity import service as identity_service
from tanhui.incentives import service as incentives_service
from tanhui.kit import db as kit_db
from tanhui.kit.settings import get_settings
from tanhui.mall import service as mall_service
from tanhui.methodology import service as methodology_service

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desk": {"width": 1366, "height": 900}}
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.sqlite_only,
]


@dataclass
class Site:
    url: str
    phones: list[str]
    admin: tuple[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed() -> list[str]:
    """The demo, seeded part by part; returns the phones of the citizens with the most points."""
    ctx = demo_module.DemoContext(rng=__import__("random").Random(2026))
    for _, seeder in demo_module.SEEDERS:
        with kit_db.session_scope() as session:
            seeder(session, ctx)
    with kit_db.session_scope() as session:
        ranked = sorted(
            ctx.data["citizens"],
            key=lambda c: -incentives_service.points_balance(session, int(c["citizen_id"])),
        )
    # One citizen per journey: one-time codes are rate-limited per phone.
    return [str(c["phone"]) for c in ranked[:8]]


# Module scope: the server and the browser close when this module ends, so another module may start
# its own (two live sync Playwright instances in one thread are not allowed).
@pytest.fixture(scope="module")
def site(backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    import uvicorn

    from tanhui.app import create_app

    folder = tmp_path_factory.mktemp("browser")
    shutil.copy(backend.template, folder / "demo.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TANHUI_DATABASE_URL", f"sqlite:///{folder / 'demo.db'}")
        mp.setenv("TANHUI_DATA_DIR", str(folder / "var"))
        get_settings.cache_clear()
        kit_db.reset_default_session_factory()
        phones = _seed()
        port = _free_port()
        config = uvicorn.Config(
            create_app(),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="none",
            lifespan="on",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:  # start-up, not a timing assumption: wait until it listens
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        try:
            yield Site(f"http://127.0.0.1:{port}", phones, ("admin", "admin-demo-2026"))
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            kit_db.reset_default_session_factory()
            get_settings.cache_clear()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield chromium
        chromium.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if page.evaluate("document.documentElement.scrollHeight") > 2 * page.viewport_size["height"]:
        page.screenshot(path=str(SHOTS / f"{name}-top.png"))  # a long page: its first screen too


def _check_page(page: Any, lang: str) -> None:
    """Every page: a title, the right lang attribute, nothing wider than the screen."""
    assert page.title()
    assert page.locator("html").get_attribute("lang") == ("zh-CN" if lang == "zh" else "en")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{page.url} is {overflow}px wider than the viewport"


T = {
    "zh": {
        "send": "获取验证码",
        "login": "登录",
        "redeem": "兑换",
        "approve": "通过",
        "store": "校验并保存",
        "publish": "发布",
        "redeemed": "兑换成功",
        "approved": "已通过",
        "published": "新版本已发布",
        "verified": "已写入存证日志",
    },
    "en": {
        "send": "Send code",
        "login": "Log in",
        "redeem": "Redeem",
        "approve": "Approve",
        "store": "Check and store",
        "publish": "Publish",
        "redeemed": "Redeemed",
        "approved": "Approved",
        "published": "The new version is published",
        "verified": "Verified in log at index",
    },
}


def _cheapest_coupon(phone: str) -> int:
    with kit_db.session_scope() as session:
        citizen = identity_service.citizen_for_phone(session, phone, create=False)
        points = incentives_service.points_balance(session, citizen.id)
        rewards = [
            r
            for r in mall_service.list_rewards(session)
            if r.kind == "coupon"
            and not r.districts
            and r.min_level == 0
            and mall_service.available_codes(session, r.id) > 0
        ]
        reward = min(rewards, key=lambda r: r.price_points)
        assert reward.price_points <= points, (reward.price_points, points)
        return reward.id


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("width", ["phone", "desk"])
def test_citizen_journey(site: Site, browser: Any, width: str, lang: str) -> None:
    t = T[lang]
    tag = f"citizen-{width}-{lang}"
    phone = site.phones[list(VIEWPORTS).index(width) * 2 + list(T).index(lang)]
    context = browser.new_context(viewport=VIEWPORTS[width], locale="zh-CN")
    page = context.new_page()
    page.goto(f"{site.url}/?lang={lang}")
    _check_page(page, lang)
    _shot(page, f"{tag}-01-landing")

    page.goto(f"{site.url}/login")
    page.get_by_label(re.compile("手机号|Mobile number")).fill(phone)
    page.get_by_role("button", name=t["send"]).click()
    assert page.locator("#dev-hint").is_visible()
    _shot(page, f"{tag}-02-code")
    code = identity_service.last_otp(phone)
    assert code
    page.get_by_label(re.compile("验证码|One-time code")).fill(code)
    page.get_by_role("button", name=t["login"], exact=True).click()
    page.wait_for_url(re.compile(r"/me$"))
    assert re.search(r"\d (g|kg|t)$", page.locator("#total-reduction").inner_text())
    _check_page(page, lang)
    _shot(page, f"{tag}-03-home")

    page.goto(f"{site.url}/me/records")
    _check_page(page, lang)
    _shot(page, f"{tag}-04-history")
    page.locator("ul.records a").first.click()
    page.wait_for_url(re.compile(r"/me/records/\d+"))
    assert page.locator("#steps li").count() >= 2
    assert page.locator("#factors").count() == 1
    _check_page(page, lang)
    _shot(page, f"{tag}-05-record")

    reward_id = _cheapest_coupon(phone)
    page.goto(f"{site.url}/mall")
    _check_page(page, lang)
    _shot(page, f"{tag}-06-mall")
    page.goto(f"{site.url}/mall/rewards/{reward_id}")
    page.locator("form.stack button[type=submit]").click()
    page.wait_for_url(re.compile(r"/mall/orders"))
    assert t["redeemed"] in page.locator(".flash").inner_text()
    assert page.locator("code.coupon").count() >= 1
    _check_page(page, lang)
    _shot(page, f"{tag}-07-orders")

    for path, name in [("/me/apps", "08-apps"), ("/me/privacy", "09-privacy")]:
        page.goto(site.url + path)
        _check_page(page, lang)
        _shot(page, f"{tag}-{name}")
    page.goto(f"{site.url}/docs/partners")
    _shot(page, f"{tag}-10-partner-docs")
    page.goto(f"{site.url}/partners/apply")
    _check_page(page, lang)
    _shot(page, f"{tag}-11-partner-apply")
    context.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("width", ["phone", "desk"])
def test_operator_journey(site: Site, browser: Any, width: str, lang: str) -> None:
    t = T[lang]
    tag = f"operator-{width}-{lang}"
    context = browser.new_context(viewport=VIEWPORTS[width])
    page = context.new_page()
    page.goto(f"{site.url}/console/login?lang={lang}")
    page.get_by_label(re.compile("用户名|Username")).fill(site.admin[0])
    page.get_by_label(re.compile("密码|Password")).fill(site.admin[1])
    page.keyboard.press("Enter")  # keyboard works: the form submits on Enter
    page.wait_for_url(re.compile(r"/console$"))
    assert page.locator("svg.chart").count() >= 1
    _check_page(page, lang)
    _shot(page, f"{tag}-01-dashboard")

    page.goto(f"{site.url}/console/review")
    _check_page(page, lang)
    _shot(page, f"{tag}-02-review")
    first = page.locator("table#review tbody tr").first
    record_id = first.get_attribute("id")
    first.get_by_role("button", name=re.compile(t["approve"])).first.click()
    page.wait_for_url(re.compile(r"done=approved"))
    assert t["approved"] in page.locator(".flash").inner_text()
    assert page.locator(f"#{record_id}").count() == 0
    # Several at once: "select all shown" (a small script) ticks every row and unticks them;
    # two ticked by hand are rejected with one reason.
    picks = page.locator("table#review input[name^=pick_]")
    page.locator("#pick-all").check()
    assert page.locator("table#review input[name^=pick_]:checked").count() == picks.count()
    page.locator("#pick-all").uncheck()
    assert page.locator("table#review input[name^=pick_]:checked").count() == 0
    chosen = [picks.nth(k).get_attribute("name") for k in (0, 1)]
    picks.nth(0).check()
    picks.nth(1).check()
    page.locator("#bulk-reason").fill("web journey")
    page.get_by_role("button", name=re.compile("驳回所选|Reject selected")).click()
    page.wait_for_url(re.compile(r"done=decided&decided=2&missed=0"))
    assert re.search("已处理 2 条记录|2 records decided", page.locator(".flash").inner_text())
    for name in chosen:
        assert page.locator(f"input[name={name}]").count() == 0
    _shot(page, f"{tag}-02-review-bulk")

    page.goto(f"{site.url}/console/methodologies")
    text = (
        Path(methodology_service.__file__).parent / "catalogue" / "wuhan-metro@1.toml"
    ).read_text()
    version = f"web-{width}-{lang}"
    page.locator("#f-toml").fill(text.replace('version = "1"', f'version = "{version}"'))
    page.get_by_role("button", name=t["store"]).click()
    page.wait_for_url(re.compile(rf"/console/methodologies/wuhan-metro\?version={version}"))
    _check_page(page, lang)
    _shot(page, f"{tag}-03-methodology")

    page.goto(f"{site.url}/console/methodologies")
    page.locator("#p-scenario").select_option("metro")
    page.locator("#p-mid").select_option("wuhan-metro")
    page.get_by_role("button", name=t["publish"], exact=True).click()
    page.wait_for_url(re.compile(r"done=published"))
    assert t["published"] in page.locator(".flash").inner_text()
    _check_page(page, lang)
    _shot(page, f"{tag}-04-published")

    # a broken upload shows its errors by line and field
    page.locator("#f-toml").fill('id = "wuhan-metro"\nversion = "x y"\n')
    page.get_by_role("button", name=t["store"]).click()
    assert page.locator("#upload-errors tbody tr").count() >= 1
    _shot(page, f"{tag}-05-upload-errors")

    for path, name in [
        ("/console/factors", "06-factors"),
        ("/console/rules", "06-rules"),
        ("/console/partners", "07-partners"),
        ("/console/mall", "08-mall"),
    ]:
        page.goto(site.url + path)
        _check_page(page, lang)
        _shot(page, f"{tag}-{name}")
    # a partner's feed: records per day by status, and why records were refused
    page.goto(f"{site.url}/console/partners")
    # the bike-share app, whose bad release the demo replays: its refusals are listed by code
    page.locator("#partners tbody tr", has_text=re.compile("共享单车|Bike")).locator(
        "a"
    ).first.click()
    assert page.locator("#partner-totals").is_visible()
    assert page.locator("#rejections").get_by_text("implausible_speed").is_visible()
    _check_page(page, lang)
    _shot(page, f"{tag}-07-partner-feed")
    page.goto(f"{site.url}/console/ledger")
    page.locator("main form button").click()
    assert page.locator("#ledger-result").is_visible()
    _shot(page, f"{tag}-09-ledger")
    context.close()
