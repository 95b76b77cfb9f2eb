"""Identity tests use a fixed platform secret, never the checkout's var/secret.key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tanhui.kit.settings import get_settings


@pytest.fixture(autouse=True)
def platform_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    secret = "identity-test-secret-0123456789abcdef"
    monkeypatch.setenv("TANHUI_SECRET_KEY", secret)
    get_settings.cache_clear()
    yield secret
    get_settings.cache_clear()
