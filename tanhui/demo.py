"""`tanhui demo`: a realistic demo platform, built by each part's `demo.seed` in dependency order."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tanhui.activity import demo as activity_demo
from tanhui.identity import demo as identity_demo
from tanhui.kit.db import session_scope
from tanhui.kit.errors import Conflict
from tanhui.ledger import demo as ledger_demo
from tanhui.ledger.models import Account
from tanhui.mall import demo as mall_demo
from tanhui.projects import demo as projects_demo
from tanhui.trust import demo as trust_demo


@dataclass
class DemoContext:
    """What earlier parts created, for later parts to build on (citizens, partners, organisations...)."""

    rng: random.Random
    summary: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


# Order matters: a part may only use what the parts before it created.
SEEDERS: list[tuple[str, Callable[[Session, DemoContext], None]]] = [
    ("ledger", ledger_demo.seed),
    ("identity", identity_demo.seed),
    (
        "activity",
        activity_demo.seed,
    ),  # after identity (partners, citizens), methodology, incentives
    ("projects", projects_demo.seed),  # projects and registry; after activity (personal batch)
    ("mall", mall_demo.seed),  # after identity and activity: uses ctx.data["citizens"]
    ("trust", trust_demo.seed),  # last: every value moved above is in the log, signed
]


def run(*, seed: int, force: bool = False) -> list[str]:
    ctx = DemoContext(rng=random.Random(seed))
    with session_scope() as session:
        if not force and session.scalar(select(func.count()).select_from(Account)):
            raise Conflict(
                "the database already has data; use a fresh database or --force", code="not_empty"
            )
    with Progress() as progress:
        task = progress.add_task("demo", total=len(SEEDERS))
        for name, seeder in SEEDERS:
            progress.update(task, description=f"demo: {name}")
            # One transaction per part: a failing part leaves the earlier parts' data usable.
            with session_scope() as session:
                seeder(session, ctx)
            progress.advance(task)
    return ctx.summary
