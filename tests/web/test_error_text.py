"""Errors on pages are said in the reader's language: every code the services raise has its words,
and where the service's message tells what to fix, it follows them."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import tanhui
from tanhui.kit.errors import TanhuiError
from tanhui.web import security
from tanhui.web.views.common import ERROR_TEXT, WITH_DETAIL
from tests.web.conftest import csrf, login_as


def _subclasses(cls: type[TanhuiError]) -> set[type[TanhuiError]]:
    found: set[type[TanhuiError]] = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def _raised_codes() -> set[str]:
    """Codes of every TanhuiError subclass, and those passed as `code=` where one is raised."""
    for module in pkgutil.walk_packages(tanhui.__path__, "tanhui."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    errors: set[type[TanhuiError]] = {TanhuiError, *_subclasses(TanhuiError)}
    codes = {cls.code for cls in errors}
    names = {cls.__name__ for cls in errors}
    for path in Path(tanhui.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else None
            if isinstance(node.func, ast.Name):
                callee = node.func.id
            if callee not in names:
                continue
            for keyword in node.keywords:
                if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                    assert isinstance(keyword.value.value, str), path
                    codes.add(keyword.value.value)
    return codes


def test_every_error_code_has_words() -> None:
    codes = _raised_codes()
    assert len(codes) > 100  # the scan found the services' errors
    assert sorted(codes - ERROR_TEXT.keys()) == []
    assert ERROR_TEXT.keys() >= WITH_DETAIL


def test_a_generic_error_is_said_in_chinese_with_what_to_fix(client, world) -> None:  # type: ignore[no-untyped-def]
    login_as(client, world.citizen.token)
    data = {security.CSRF_FIELD: csrf(client), "quantity": "99", "idempotency_key": "k1"}
    zh = client.post(f"/mall/rewards/{world.reward.id}?lang=zh", data=data)
    assert zh.status_code == 422
    assert "填写的内容有误。（quantity must be" in zh.text
    en = client.post(f"/mall/rewards/{world.reward.id}?lang=en", data=data)
    assert "Something in the form is not valid. (quantity must be" in en.text
