"""Trust demo step: integrate everything the other parts logged and sign a tree head, so every demo
record and retirement already shows "in the log at index N" with a proof to download."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from tanhui.trust import service as trust_service

if TYPE_CHECKING:
    from tanhui.demo import DemoContext


def seed(session: Session, ctx: DemoContext) -> None:
    leaves = trust_service.integrate_all(session)
    head = trust_service.publish(session, force=True)
    ctx.summary.append(
        f"trust: {leaves} leaves integrated; signed tree head at size {head.tree_size}"
    )
