"""A partner written from the guide alone: the guide's own Python snippet, with a real key, sends a
record to a running server and sees it credited. Nothing of Tanhui's code is used on the partner side."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tanhui.identity import signing
from tanhui.kit.db import session_scope
from tests.fixtures import activity as activity_fx


def _snippet(base: str, start: str, partner: Any) -> str:
    """The guide's code block that starts with `start`, with the partner's own key and this
    server's address filled in: what a partner changes in it, and nothing else."""
    page = httpx.get(base + "/docs/partners?lang=en").text
    blocks = [html.unescape(b) for b in re.findall(r"<pre><code>(.*?)</code></pre>", page, re.S)]
    snippet = next(b for b in blocks if b.startswith(start))
    for name, value in (("KEY_ID", partner.key_id), ("SECRET", partner.secret), ("BASE", base)):
        # Python `NAME = "..."`, Java `static final String NAME = "...";`, JS `const NAME = "...";`
        snippet, found = re.subn(
            rf'^(.*\b{name} = )".*"(;?)$', rf'\g<1>"{value}"\g<2>', snippet, flags=re.M
        )
        assert found == 1, (start, name)
    return snippet


def _partner_and_trip() -> tuple[Any, dict[str, Any]]:
    """A metro partner with its key, and a trip of a citizen bound to it."""
    with session_scope() as session:
        partner = activity_fx.partner(session, scenarios=("metro",))
        puid, _ = activity_fx.bind(session, partner)
    return partner, activity_fx.record(puid, scenario="metro", quantities={"distance_km": "10"})


def _assert_credited(command: list[str], folder: Path) -> None:
    """Run a partner program that prints the API's answer; its one record was credited."""
    run = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    (result,) = json.loads(run.stdout)["results"]
    assert result["status"] == "credited", result


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
    partner, record = _partner_and_trip()

    snippet = _snippet(live_server, "import hashlib", partner)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "partner-guide", "exec"), namespace)

    answer = namespace["post"](namespace["PATH"], {"records": [record]})
    (result,) = answer["results"]
    assert result["status"] == "credited", result
    assert result["reduction_mg"] > 0


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed: the guide's {name} snippet is not run here"
        if os.environ.get("TANHUI_REQUIRE_CLIENTS") == "1":
            pytest.fail(message + " — but TANHUI_REQUIRE_CLIENTS=1")
        pytest.skip(message)
    return found


@pytest.mark.sqlite_only
def test_the_guides_java_snippet_gets_a_record_credited(live_server: str, tmp_path: Path) -> None:
    java = _tool("java")
    partner, record = _partner_and_trip()
    (tmp_path / "Partner.java").write_text(_snippet(live_server, "import java.net", partner))
    # JDK 11+ runs a single source file; main checks the worked example first, then posts.
    batch = json.dumps({"records": [record]}, ensure_ascii=False)
    _assert_credited([java, "Partner.java", batch], tmp_path)


@pytest.mark.sqlite_only
def test_the_guides_node_snippet_gets_a_record_credited(live_server: str, tmp_path: Path) -> None:
    node = _tool("node")
    partner, record = _partner_and_trip()
    (tmp_path / "partner.mjs").write_text(_snippet(live_server, "// Save as partner.mjs", partner))
    batch = json.dumps({"records": [record]})
    driver = (
        'import { post } from "./partner.mjs";\n'
        f'console.log(JSON.stringify(await post("/v1/partner/activities", {batch})));\n'
    )
    (tmp_path / "send.mjs").write_text(driver)
    _assert_credited([node, "send.mjs"], tmp_path)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_request_offering_an_h2c_upgrade_is_answered_over_http11(
    live_server: str, framing: str
) -> None:
    """What Java's stock HttpClient sends to an http:// address: HTTP/1.1 with an h2c upgrade
    offer, the body in a packet of its own (chunked, as Spring's RestClient sends it over that
    client). The server ignores the offer and reads the body."""
    partner, record = _partner_and_trip()
    path = "/v1/partner/activities"
    body = json.dumps({"records": [record]}).encode()
    headers = {
        "Host": live_server.removeprefix("http://"),
        "Connection": "Upgrade, HTTP2-Settings",
        "Upgrade": "h2c",
        "HTTP2-Settings": "AAEAAEAAAAIAAAAAAAMAAAAAAAQBAAAAAAUAAEAAAAYABgAA",
        "Content-Type": "application/json",
        **signing.signed_headers(partner.key_id, partner.secret, "POST", path, body),
    }
    if framing == "chunked":
        headers["Transfer-Encoding"] = "chunked"
        sent = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    else:
        headers["Content-Length"] = str(len(body))
        sent = body
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    host, port = headers["Host"].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(head.encode() + b"\r\n")
        time.sleep(0.05)  # the body apart from the headers, as the JDK client writes it
        connection.sendall(sent)
        with connection.makefile("rb") as reader:
            status_line = reader.readline().rstrip(b"\r\n")
            length = 0
            while (line := reader.readline().rstrip(b"\r\n")) != b"":
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = reader.read(length)
    assert status_line == b"HTTP/1.1 200 OK", (status_line, answer[:500])
    (result,) = json.loads(answer)["results"]
    assert result["status"] == "credited", result
