"""`tanhui serve` on a new SQLite database migrates it and answers on the port it was given."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.sqlite_only
def test_serve_migrates_a_new_database_and_serves(tmp_path: Path, backend: object) -> None:
    port = _free_port()
    env = {**os.environ, "TANHUI_DATA_DIR": str(tmp_path), "TANHUI_DATABASE_URL": ""}
    cli = Path(sys.executable).with_name("tanhui")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(cli), "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                # Polling for readiness, not timing anything: the deadline only bounds a broken start.
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"server did not start: {log.read_text()}")
                time.sleep(0.2)
        assert response.json()["status"] == "ok"
        assert (tmp_path / "tanhui.db").exists()
    finally:
        server.terminate()
        server.wait(timeout=20)
