"""The partner guide's worked example is the server's own signature and its snippet reproduces it."""

from __future__ import annotations

import html
import re

from tanhui.identity import signing
from tanhui.web.views import docs


def test_example_signature_is_the_servers(client):
    page = client.get("/docs/partners?lang=en")
    assert page.status_code == 200
    ex = docs.worked_example()
    expected = signing.sign(
        docs.EXAMPLE_SECRET,
        "POST",
        docs.INGEST_PATH,
        docs.EXAMPLE_TIMESTAMP,
        docs.EXAMPLE_NONCE,
        ex["body"],
    )
    assert expected in page.text
    string_block = re.search(r'<code id="ex-string">(.*?)</code>', page.text, re.S)
    assert string_block is not None
    assert html.unescape(string_block.group(1)).split("\n") == [
        "POST",
        docs.INGEST_PATH,
        str(docs.EXAMPLE_TIMESTAMP),
        docs.EXAMPLE_NONCE,
        signing.body_sha256(ex["body"]),
    ]


def test_python_snippet_reproduces_the_example(client):
    page = client.get("/docs/partners").text
    blocks = [html.unescape(b) for b in re.findall(r"<pre><code>(.*?)</code></pre>", page, re.S)]
    snippet = next(b for b in blocks if b.startswith("import hashlib"))
    # Run everything up to the network call: the assert inside the snippet checks the signature.
    runnable = snippet.split("# A real request")[0]
    exec(compile(runnable, "partner-snippet", "exec"), {})


def test_the_guide_explains_every_outcome_the_api_names(client):
    """The outcome table covers each status and each rejection code the API schema lists, in both
    languages (a code added to the API without a line in the guide fails here)."""
    from tanhui.activity import schemas

    named = set(
        re.findall(r"[a-z]+_[a-z_]+", schemas.RecordResult.model_fields["code"].description)
    )
    wanted = named | {
        "credited",
        "review",
        "duplicate",
        "rejected_by_reviewer",
        "reversed_by_partner",
    }
    for lang in ("zh", "en"):
        page = client.get(f"/docs/partners?lang={lang}").text
        table = re.search(r'<table class="data" id="outcome-codes">(.*?)</table>', page, re.S)
        assert table is not None
        assert set(re.findall(r"<code>(\w+)</code>", table.group(1))) == wanted
