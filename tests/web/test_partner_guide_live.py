"""A partner written from the guide alone: the guide's own Python snippet, with a real key, sends a
record to a running server and sees it credited. Nothing of Tanhui's code is used on the partner side."""

from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tanhui.kit.db import session_scope
from tests.fixtures import activity as activity_fx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Any:
    port = _free_port()
    log = tmp_path / "serve.log"
    cli = Path(sys.executable).with_name("tanhui")
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(cli), "serve", "--port", str(port)],
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(base + "/healthz", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail(f"server did not start: {log.read_text()}")
            time.sleep(0.2)  # waiting for readiness, not timing anything
    yield base
    server.terminate()
    server.wait(timeout=20)


@pytest.mark.sqlite_only
def test_the_guides_snippet_gets_a_record_credited(live_server: str) -> None:
    with session_scope() as session:
        partner = activity_fx.partner(session, scenarios=("metro",))
        puid, _ = activity_fx.bind(session, partner)

    page = httpx.get(live_server + "/docs/partners?lang=en").text
    blocks = [html.unescape(b) for b in re.findall(r"<pre><code>(.*?)</code></pre>", page, re.S)]
    snippet = next(b for b in blocks if b.startswith("import hashlib"))
    # The partner fills in the key the operator gave them, and nothing else.
    snippet = re.sub(r'^KEY_ID = ".*"$', f'KEY_ID = "{partner.key_id}"', snippet, flags=re.M)
    snippet = re.sub(r'^SECRET = ".*"$', f'SECRET = "{partner.secret}"', snippet, flags=re.M)
    snippet = re.sub(r'^BASE = ".*"$', f'BASE = "{live_server}"', snippet, flags=re.M)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "partner-guide", "exec"), namespace)

    record = activity_fx.record(puid, scenario="metro", quantities={"distance_km": "10"})
    answer = namespace["post"](namespace["PATH"], {"records": [record]})
    (result,) = answer["results"]
    assert result["status"] == "credited", result
    assert result["reduction_mg"] > 0
