"""Every trust test signs with a throwaway key in its own directory, never the checkout's var/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tanhui.kit.settings import get_settings


@pytest.fixture(autouse=True)
def trust_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "keys" / "trust-ed25519.pem"
    monkeypatch.setenv("TANHUI_TRUST_KEY_PATH", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()
