"""The partner API guide, with a worked signing example computed at render time.

The example's signature comes from `tanhui.identity.signing.sign`, the function the server verifies
with, so the page cannot drift from the server; the snippets use only the standard library.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from tanhui.identity import signing
from tanhui.identity.principal import Principal
from tanhui.kit.settings import get_settings
from tanhui.web import render
from tanhui.web.auth import web_principal

router = APIRouter(include_in_schema=False)

INGEST_PATH = "/v1/partner/activities"
# Illustrative credentials: not a key of this platform. Fixed, so the page is reproducible.
EXAMPLE_KEY_ID = "pk_demo_metro"
EXAMPLE_SECRET = "sk_demo_5f2b9c0e7a14d3b8c6e1f09a2d47b35c"
EXAMPLE_TIMESTAMP = 1764057600  # 2025-11-25T08:00:00Z
EXAMPLE_NONCE = "9f1c2e7a4b6d8e0f1a2b3c4d"
EXAMPLE_RECORDS = {
    "records": [
        {
            "external_id": "trip-20251125-000123",
            "partner_user_id": "u-88231",
            "scenario": "metro",
            "started_at": "2025-11-25T07:31:00+08:00",
            "ended_at": "2025-11-25T08:02:00+08:00",
            "quantities": {"distance_km": "10.5"},
        }
    ]
}


def worked_example() -> dict[str, Any]:
    body = json.dumps(EXAMPLE_RECORDS, ensure_ascii=False, separators=(",", ":"))
    to_sign = signing.string_to_sign(
        "POST", INGEST_PATH, EXAMPLE_TIMESTAMP, EXAMPLE_NONCE, body
    ).decode()
    signature = signing.sign(
        EXAMPLE_SECRET, "POST", INGEST_PATH, EXAMPLE_TIMESTAMP, EXAMPLE_NONCE, body
    )
    return {
        "method": "POST",
        "path": INGEST_PATH,
        "key_id": EXAMPLE_KEY_ID,
        "secret": EXAMPLE_SECRET,
        "timestamp": EXAMPLE_TIMESTAMP,
        "nonce": EXAMPLE_NONCE,
        "body": body,
        "body_sha256": signing.body_sha256(body),
        "string_to_sign": to_sign,
        "signature": signature,
        "base_url": get_settings().base_url.rstrip("/"),
        "headers": signing.HEADERS,
        "max_skew": signing.MAX_SKEW_SECONDS,
        "nonce_min": signing.NONCE_MIN,
        "nonce_max": signing.NONCE_MAX,
    }


@router.get("/docs/partners", response_class=HTMLResponse)
def partner_docs(
    request: Request, principal: Principal | None = Depends(web_principal)
) -> HTMLResponse:
    return render.render(
        request, "docs/partners.html", {"ex": worked_example()}, principal=principal
    )
