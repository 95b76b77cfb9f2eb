"""Connections between parts that neither side may import: installed once per process.

The ledger and the trust log import no part, so what feeds one into the other is declared here,
explicitly, for the app factory, the CLI and the tests alike.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from tanhui.ledger.service import CheckProblem

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True


def extra_checks(session: Session) -> list[CheckProblem]:
    """Checks that span parts (e.g. registry holdings against credit balances), run by `ledger check`."""
    problems: list[CheckProblem] = []
    for run in EXTRA_CHECKS:
        problems.extend(run(session))
    return problems


EXTRA_CHECKS: list[Callable[[Session], list[CheckProblem]]] = []
