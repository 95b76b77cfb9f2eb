"""The parts' services as the pages see them: imported if the part is installed, else None.

Parts are built side by side; a page whose part is missing says so ("not available yet") rather than
showing invented numbers. Once every part has landed this module is just a list of imports.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def optional(part: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"tanhui.{part}.service")
    except ImportError:
        return None


def function(part: str, name: str) -> Any:
    """`function("activity", "citizen_summary")` or None when the part or the function is missing."""
    module = optional(part)
    return getattr(module, name, None) if module is not None else None
