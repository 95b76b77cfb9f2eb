"""Shared helpers for the pure engine tests: the shipped catalogue, loaded once."""

from __future__ import annotations

from functools import cache

from tanhui.methodology.engine import CompiledMethodology, FactorTable
from tanhui.methodology.loader import load_catalogue, load_factor_tables, load_methodology


@cache
def tables() -> dict[str, FactorTable]:
    return load_factor_tables()


@cache
def catalogue() -> dict[tuple[str, str], CompiledMethodology]:
    return {m.key: m for m in load_catalogue(tables())}


def shipped(mid: str, version: str = "1") -> CompiledMethodology:
    return catalogue()[(mid, version)]


def compile_text(text: str, file: str = "test.toml") -> CompiledMethodology:
    return load_methodology(text, file=file, tables=tables())


HEADER = """
id = "test-trip"
version = "1"
scenario = "metro"
kind = "scenario"
region = "shenzhen"
effective_from = 2024-01-01

[name]
zh = "测试"
en = "Test"

[issuer]
zh = "测试机构"

[document]
title = "Test document"
address = "https://example.org/doc"
"""


def methodology(body: str) -> str:
    """A complete methodology text: the fixed header followed by `body` (inputs, steps ...)."""
    return HEADER + body
