"""Babel catalogues compiled in memory at start-up, so a fresh clone works without a build step.

The source of truth is `locale/<lang>/LC_MESSAGES/messages.po`; msgids are English, so the `en`
catalogue may leave msgstr empty (gettext falls back to the msgid) while `zh_CN` translates all.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages import mofile, pofile
from babel.support import NullTranslations, Translations
from markupsafe import Markup

LOCALE_DIR = Path(__file__).parent / "locale"


def N_(message: str) -> str:
    """Marks a msgid for extraction; translated where it is shown."""
    return message


LANGUAGES: dict[str, str] = {"zh": "zh_CN", "en": "en"}
"""URL/cookie code -> catalogue folder. Chinese first: "zh" is the default."""
DEFAULT_LANGUAGE = "zh"
HTML_LANG = {"zh": "zh-CN", "en": "en"}
LANG_COOKIE = "tanhui_lang"

_current: ContextVar[str] = ContextVar("tanhui_web_lang", default=DEFAULT_LANGUAGE)


@cache
def translations(lang: str) -> NullTranslations:
    folder = LANGUAGES.get(lang)
    if folder is None:
        return NullTranslations()
    path = LOCALE_DIR / folder / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = pofile.read_po(handle, locale=folder)
    buffer = io.BytesIO()
    mofile.write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain="messages")


def in_catalogue(message: str) -> bool:
    """Whether `message` is one of the catalogue's msgids (the Chinese one translates them all)."""
    return translations("zh").gettext(message) != message


def pick(query: str | None, cookie: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate  # type: ignore[return-value]
    return DEFAULT_LANGUAGE


def set_current(lang: str) -> Any:
    return _current.set(lang)


def reset_current(token: Any) -> None:
    _current.reset(token)


def current() -> str:
    return _current.get()


def gettext(message: str, **variables: Any) -> str:
    text = translations(_current.get()).gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    text = translations(_current.get()).ngettext(singular, plural, n)
    variables.setdefault("num", n)
    return text % variables


def translator(lang: str) -> Callable[..., str]:
    """A gettext bound to one language, for text built outside a template (flash messages)."""
    catalog = translations(lang)

    def _(message: str, **variables: Any) -> str:
        text = catalog.gettext(message)
        return text % variables if variables else text

    return _


def jinja_gettext(message: str, **variables: Any) -> str:
    # Autoescape-safe like Jinja's newstyle gettext: escape the variables, not the catalogue text.
    text = translations(_current.get()).gettext(message)
    if variables:
        return Markup(Markup(text) % variables)
    return text


def jinja_ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    text = translations(_current.get()).ngettext(singular, plural, n)
    variables.setdefault("num", n)
    return Markup(Markup(text) % variables)
