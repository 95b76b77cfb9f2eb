"""The web shell: languages, CSRF, login redirects, static files, catalogues complete."""

from __future__ import annotations

import re

import pytest
from babel.messages import pofile

from tanhui.web import formatting as fmt
from tanhui.web import i18n, security


class TestLanguages:
    def test_chinese_by_default(self, client):
        page = client.get("/")
        assert page.status_code == 200
        assert '<html lang="zh-CN">' in page.text
        assert "碳普惠" in page.text

    def test_english_by_switch_and_cookie(self, client):
        page = client.get("/?lang=en")
        assert '<html lang="en">' in page.text
        assert "Small green choices" in page.text
        assert page.cookies.get(i18n.LANG_COOKIE) == "en"
        again = client.get("/about")
        assert '<html lang="en">' in again.text

    def test_unknown_language_falls_back(self, client):
        assert '<html lang="zh-CN">' in client.get("/?lang=xx").text

    def test_chinese_catalogue_is_complete(self):
        path = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as handle:
            catalog = pofile.read_po(handle)
        untranslated = [m.id for m in catalog if m.id and not m.string]
        assert untranslated == []
        fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
        assert fuzzy == []

    def test_placeholders_survive_translation(self):
        path = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as handle:
            catalog = pofile.read_po(handle)
        for message in catalog:
            if not message.id or not isinstance(message.id, str):
                continue
            wanted = sorted(re.findall(r"%\(\w+\)s", message.id))
            assert sorted(re.findall(r"%\(\w+\)s", message.string)) == wanted, message.id


class TestPages:
    @pytest.mark.parametrize("path", ["/", "/about", "/docs/partners", "/login", "/console/login"])
    def test_public_pages_render(self, client, path):
        page = client.get(path)
        assert page.status_code == 200
        assert "<title>" in page.text
        assert "cdn" not in page.text.lower()

    @pytest.mark.parametrize("path", ["/me"])
    def test_citizen_pages_need_login(self, client, path):
        page = client.get(path, follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login?next=")

    @pytest.mark.parametrize("path", ["/console"])
    def test_console_pages_need_staff_login(self, client, path):
        page = client.get(path, follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/console/login?next=")

    def test_static_css_is_local(self, client):
        css = client.get("/static/tanhui.css")
        assert css.status_code == 200
        assert "PingFang SC" in css.text
        assert "http" not in css.text

    def test_bad_session_cookie_is_anonymous(self, client):
        client.cookies.set("tanhui_session", "garbage")
        assert client.get("/").status_code == 200
        assert client.get("/me", follow_redirects=False).status_code == 303


class TestCsrf:
    def test_post_without_token_is_refused_with_a_page(self, client):
        page = client.post("/login/code", data={"phone": "13800138000"})
        assert page.status_code == 403
        assert "csrf_failed" in page.text
        assert page.headers["content-type"].startswith("text/html")

    def test_forged_token_is_refused(self, client):
        client.cookies.set(security.CSRF_COOKIE, "abc.def")
        page = client.post("/login/code", data={"phone": "1", security.CSRF_FIELD: "abc.def"})
        assert page.status_code == 403

    def test_tokens_are_signed(self):
        token = security.new_token()
        assert security.valid(token)
        nonce, _ = token.split(".")
        assert not security.valid(nonce + ".0000")
        assert not security.valid(None)
        assert not security.valid("no-dot")


class TestFormatting:
    @pytest.mark.parametrize(
        ("mg", "text"),
        [
            (0, "0.0 g"),
            (500, "500 mg"),
            (1_500, "1.5 g"),
            (250_000, "250 g"),
            (1_234_567, "1.23 kg"),
            (2_000_000_000, "2.000 t"),
            (-1_500_000, "-1.50 kg"),
        ],
    )
    def test_mass_shows_units(self, mg, text):
        assert fmt.mass(mg, "en") == text

    def test_change(self):
        assert fmt.change(110, 100) == 10
        assert fmt.change(5, 0) is None


def test_reward_images_are_bundled_icons_only() -> None:
    from tanhui.web.render import STATIC, reward_image

    assert reward_image({"image": "metro.svg", "category": "props"}) == "/static/rewards/metro.svg"
    # Unknown names, paths and URLs fall back to the category's bundled icon.
    for image in ("missing.svg", "../secret.key", "https://tracker.example/pixel.png", ""):
        url = reward_image({"image": image, "category": "daily_services"})
        assert url == "/static/rewards/coffee.svg"
        assert (STATIC / url.removeprefix("/static/")).is_file()
