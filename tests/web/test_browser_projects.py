"""The project path end to end in a real browser: an owner registers a rooftop PV project and files a
monitoring report from meter readings, the verifier validates and verifies, the operator registers and
approves, the owner retires credits, and the public registry shows the batch and the retirement with
its proof link. Desk width in Chinese, phone width in English; screenshots under
test-artifacts/screenshots/ (conventions of test_browser.py).

The server runs on a fresh SQLite copy with only the ledger and identity demo data (staff with known
passwords): the journey creates everything else itself, so it stays short.
"""

from __future__ import annotations

import random
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from tanhui import demo as demo_module
from tanhui.kit import db as kit_db
from tanhui.kit.settings import get_settings
from tanhui.trust import service as trust_service
from tests.web.test_browser import (
    ARGS,
    CHROMIUM,
    VIEWPORTS,
    _check_page,
    _free_port,
    _shot,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.sqlite_only,
]

LOGINS = {
    "owner": ("owner", "owner-demo-2026"),
    "verifier": ("verifier", "verifier-demo-2026"),
    "operator": ("admin", "admin-demo-2026"),
}


@dataclass
class ProjectSite:
    url: str
    verifier_org: int


@pytest.fixture(scope="module")
def project_site(backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectSite]:  # type: ignore[no-untyped-def]
    import uvicorn

    from tanhui.app import create_app

    folder = tmp_path_factory.mktemp("browser-projects")
    shutil.copy(backend.template, folder / "site.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TANHUI_DATABASE_URL", f"sqlite:///{folder / 'site.db'}")
        mp.setenv("TANHUI_DATA_DIR", str(folder / "var"))
        get_settings.cache_clear()
        kit_db.reset_default_session_factory()
        ctx = demo_module.DemoContext(rng=random.Random(2026))
        seeders = dict(demo_module.SEEDERS)
        for name in ("ledger", "identity"):
            with kit_db.session_scope() as session:
                seeders[name](session, ctx)
        verifier_org = int(ctx.data["staff"]["verifier"]["organisation_id"])
        port = _free_port()
        config = uvicorn.Config(
            create_app(), host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:  # start-up, not a timing assumption: wait until it listens
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        try:
            yield ProjectSite(f"http://127.0.0.1:{port}", verifier_org)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            kit_db.reset_default_session_factory()
            get_settings.cache_clear()


def _with_chromium(journey: Callable[[Any], None]) -> None:
    """Run a journey with its own Chromium in a worker thread: test_browser.py's session-wide
    Playwright may still be running on this thread, and Playwright's sync API allows one per thread."""

    def run() -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            try:
                journey(browser)
            finally:
                browser.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(run).result()  # re-raises the journey's assertion errors here


T = {"zh": {"verified": "已写入存证日志"}, "en": {"verified": "Verified in log at index"}}


def _login(browser: Any, site: ProjectSite, who: str, width: str, lang: str) -> Any:
    context = browser.new_context(viewport=VIEWPORTS[width])
    page = context.new_page()
    page.goto(f"{site.url}/console/login?lang={lang}")
    page.get_by_label(re.compile("用户名|Username")).fill(LOGINS[who][0])
    page.get_by_label(re.compile("密码|Password")).fill(LOGINS[who][1])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console$"))
    return page


def _click(page: Any, selector: str, url: str) -> None:
    page.locator(selector).click()
    page.wait_for_url(re.compile(url))


@pytest.mark.parametrize(("width", "lang"), [("desk", "zh"), ("phone", "en")])
def test_project_to_public_retirement(project_site: ProjectSite, width: str, lang: str) -> None:
    _with_chromium(lambda chromium: _journey(chromium, project_site, width, lang))


def _journey(chromium: Any, site: ProjectSite, width: str, lang: str) -> None:
    tag = f"projects-{width}-{lang}"
    owner = _login(chromium, site, "owner", width, lang)
    verifier = _login(chromium, site, "verifier", width, lang)
    operator = _login(chromium, site, "operator", width, lang)

    # owner: a new PV project, submitted
    owner.goto(f"{site.url}/console/projects/new")
    _check_page(owner, lang)
    owner.locator("#f-name").fill(f"张江屋顶光伏 {width}")
    owner.locator("#f-methodology").select_option("shanghai-distributed-pv@1")
    owner.locator("#f-location").fill("张江路 88 号")
    owner.locator("#f-district").fill("上海市浦东新区")
    owner.locator("#f-capacity_kw").fill("800")
    owner.locator("#f-crediting_start").fill("2025-01-01")
    owner.locator("#f-crediting_end").fill("2034-12-31")
    _shot(owner, f"{tag}-01-new")
    _click(owner, "#new-project button[type=submit]", r"/console/projects/\d+\?done=created")
    project_url = owner.url.split("?")[0]
    _click(owner, "#do-submit", r"done=submitted")

    # operator assigns the verifier; verifier validates; operator registers
    operator.goto(project_url)
    operator.locator("#f-verifier_org_id").select_option(str(site.verifier_org))
    _click(operator, "#do-assign_verifier", r"done=saved")
    verifier.goto(project_url)
    _click(verifier, "#do-validate", r"done=validated")
    operator.goto(project_url)
    _click(operator, "#do-register", r"done=registered")
    _check_page(operator, lang)
    _shot(operator, f"{tag}-02-registered")

    # owner files a report from meter readings (one bad line first: shown by line number)
    owner.goto(project_url)
    owner.locator("#f-period_start").fill("2025-01-01")
    owner.locator("#f-period_end").fill("2025-01-31")
    bad = b"date,meter_id,kwh\n2025-01-01,M1,lots\n"
    owner.set_input_files(
        "#f-readings", files=[{"name": "r.csv", "mimeType": "text/csv", "buffer": bad}]
    )
    owner.locator("#file-report button[type=submit]").click()
    assert owner.locator("#csv-errors tbody tr").count() == 1
    _check_page(owner, lang)
    _shot(owner, f"{tag}-03-csv-errors")
    rows = "".join(f"2025-01-{d:02d},M1,40000\n2025-01-{d:02d},M2,38500.5\n" for d in range(1, 32))
    owner.locator("#f-period_start").fill("2025-01-01")
    owner.locator("#f-period_end").fill("2025-01-31")
    owner.set_input_files(
        "#f-readings",
        files=[
            {
                "name": "r.csv",
                "mimeType": "text/csv",
                "buffer": b"date,meter_id,kwh\n" + rows.encode(),
            }
        ],
    )
    _click(owner, "#file-report button[type=submit]", r"/reports/\d+\?done=filed")
    report_url = owner.url.split("?")[0]
    assert owner.locator("#steps li").count() >= 1
    assert owner.locator("#factors").count() == 1
    _check_page(owner, lang)
    _shot(owner, f"{tag}-04-report")

    # verifier corrects the figure with a comment; operator approves and issues
    verifier.goto(report_url)
    verifier.locator("#f-corrected_kwh").fill("2400000")
    verifier.locator("#f-comment").fill("M2 offset")
    _click(verifier, "#verify-form button", r"done=verified")
    assert verifier.locator("#corrected-steps").count() == 1
    _shot(verifier, f"{tag}-05-verified")
    operator.goto(report_url)
    _click(operator, "#approve-form button", r"done=issued")
    assert operator.locator("#issued-credits").inner_text() == "1,008"
    prefix = operator.locator("#batch code").first.inner_text()
    batch_id = operator.locator("#batch a").first.get_attribute("href").rsplit("/", 1)[1]
    assert re.fullmatch(r"TH-2025-\d{6}-001", prefix)
    _check_page(operator, lang)
    _shot(operator, f"{tag}-06-issued")

    # owner retires credits for an event; the public page shows the proof once logged
    owner.goto(f"{site.url}/console/registry")
    owner.locator("#r-batch").select_option(batch_id)
    owner.locator("#r-quantity").fill("120")
    owner.locator("#r-purpose").select_option("event_neutrality")
    owner.locator("#f-beneficiary").fill(f"2026 上海马拉松 {width}")
    _check_page(owner, lang)
    _shot(owner, f"{tag}-07-account")
    _click(owner, "#retire button[type=submit]", r"/registry/retirements/RT-\d{4}-\d+")
    retirement_url = owner.url.split("?")[0]
    with kit_db.session_scope() as session:
        trust_service.integrate_all(session)

    public = chromium.new_context(viewport=VIEWPORTS[width]).new_page()
    public.goto(f"{retirement_url}?lang={lang}")
    assert T[lang]["verified"] in public.locator("#proof").inner_text()
    assert public.locator("#proof-link").get_attribute("href").startswith("/v1/trust/bundle/")
    _check_page(public, lang)
    _shot(public, f"{tag}-08-retirement")
    public.goto(f"{site.url}/registry")
    assert public.locator("svg.chart").count() == 1
    _check_page(public, lang)
    _shot(public, f"{tag}-09-registry")
    public.goto(f"{site.url}/registry/batches")
    public.locator(f"a:has-text('{prefix}')").first.click()
    public.wait_for_url(re.compile(r"/registry/batches/\d+"))
    assert public.locator("#blocks tbody tr").count() == 2  # 1–120 retired, 121–1008 active
    _check_page(public, lang)
    _shot(public, f"{tag}-10-batch")
    for page in (owner, verifier, operator, public):
        page.context.close()
