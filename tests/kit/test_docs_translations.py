"""docs/zh/ holds the Chinese text of each document in docs/: both say the same thing.

What can be checked mechanically is checked here: the same code blocks byte for byte (formats,
examples and commands are not translated), the same outline, the same tables, the same inline code,
and links that resolve. A change to one language that the other lacks fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
ENGLISH = sorted(p.name for p in DOCS.glob("*.md"))

_FENCE = re.compile(r"^```[^\n]*\n.*?^```", re.S | re.M)
_HEADING = re.compile(r"^(#{1,6}) ", re.M)
_CODE_SPAN = re.compile(r"`[^`\n]+`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    return _FENCE.sub("", text)


def _table_shapes(text: str) -> list[tuple[int, int]]:
    """(rows, columns) of each table, in order."""
    shapes: list[tuple[int, int]] = []
    rows = 0
    columns = 0
    for line in [*_prose(text).splitlines(), ""]:
        if line.startswith("|"):
            rows += 1
            columns = line.strip().count("|") - 1
        elif rows:
            shapes.append((rows, columns))
            rows = 0
    return shapes


def test_every_document_has_its_chinese_text() -> None:
    assert ENGLISH, "no documents found"
    assert sorted(p.name for p in (DOCS / "zh").glob("*.md")) == ENGLISH


@pytest.mark.parametrize("name", ENGLISH)
def test_the_chinese_text_matches_the_english(name: str) -> None:
    english = (DOCS / name).read_text(encoding="utf-8")
    chinese = (DOCS / "zh" / name).read_text(encoding="utf-8")
    assert _FENCE.findall(chinese) == _FENCE.findall(english), "code blocks differ"
    assert _HEADING.findall(_prose(chinese)) == _HEADING.findall(_prose(english)), "outline"
    assert _table_shapes(chinese) == _table_shapes(english), "tables"
    assert sorted(_CODE_SPAN.findall(_prose(chinese))) == sorted(
        _CODE_SPAN.findall(_prose(english))
    ), "inline code"
    # Each points to the other, and every relative link resolves from where the file is.
    assert f"](zh/{name})" in english
    assert f"](../{name})" in chinese
    for folder, text in ((DOCS, english), (DOCS / "zh", chinese)):
        for target in _LINK.findall(_prose(text)):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            assert (folder / target.split("#")[0]).exists(), f"{folder.name}: {target}"
