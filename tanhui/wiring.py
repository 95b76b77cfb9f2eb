"""Connections between parts that neither side may import: installed once per process.

The ledger and the trust log import no part, so what feeds one into the other is declared here,
explicitly, for the app factory, the CLI and the tests alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from tanhui.ledger import service as ledger_service
from tanhui.ledger.service import CheckProblem
from tanhui.registry import service as registry_service
from tanhui.trust import leaf as trust_leaf
from tanhui.trust import service as trust_service

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    ledger_service.add_journal_listener(log_transfers)
    _install_activity()
    _install_mall()


def extra_checks(session: Session) -> list[CheckProblem]:
    """Checks that span parts (e.g. registry holdings against credit balances), run by `ledger check`."""
    problems: list[CheckProblem] = []
    for run in EXTRA_CHECKS:
        problems.extend(run(session))
    return problems


EXTRA_CHECKS: list[Callable[[Session], list[CheckProblem]]] = [
    registry_service.check,  # serial blocks tile each batch and agree with credit balances
]


# --- ledger -> trust log ----------------------------------------------------------------------


def _transfer_payload(record: ledger_service.TransferRecord) -> dict[str, Any]:
    return trust_leaf.transfer_payload(
        transfer_id=record.id,
        kind=record.kind,
        created_at=record.created_at,
        reverses_id=record.reverses_id,
        postings=list(record.postings),  # (account id, asset, amount) tuples
        metadata=record.metadata,
        idempotency_key=record.idempotency_key,
    )


def log_transfers(session: Session, records: Sequence[ledger_service.TransferRecord]) -> None:
    """Journal listener: queue every new transfer for the trust log in the writer's transaction."""
    trust_service.enqueue_many(
        session,
        (
            (trust_leaf.LEDGER_TRANSFER, str(r.id), _transfer_payload(r))
            for r in records
            if not r.replayed  # a replayed idempotency key is the transfer already logged
        ),
    )


def _reencode_transfers(session: Session, refs: Sequence[str]) -> dict[str, dict[str, Any]]:
    ids = [int(r) for r in refs if r.isdigit()]
    return {
        str(r.id): _transfer_payload(r) for r in ledger_service.get_transfer_records(session, ids)
    }


TRUST_REENCODERS: dict[str, trust_service.Reencoder] = {
    trust_leaf.LEDGER_TRANSFER: _reencode_transfers,
    **dict.fromkeys(registry_service.LEAF_KINDS.values(), registry_service.reencode),
}
"""Leaf kind -> what its records encode to now; `tanhui trust audit` compares these to the leaves.
Registry events add their kinds here."""


# --- activity -> identity's data export --------------------------------------------------------


def _activity_export(session: Session, citizen_id: int) -> tuple[str, Any]:
    from tanhui.activity import service as activity_service

    return "activity_records", activity_service.export_section(session, citizen_id)


def _install_activity() -> None:
    from tanhui.identity import service as identity_service

    if _activity_export not in identity_service.EXPORT_SECTIONS:
        identity_service.EXPORT_SECTIONS.append(_activity_export)


# --- mall -> identity's data export and erasure ------------------------------------------------


def _mall_export(session: Session, citizen_id: int) -> tuple[str, Any]:
    from tanhui.mall import service as mall_service

    return "mall_orders", mall_service.citizen_export(session, citizen_id)


def _mall_erase(session: Session, citizen_id: int) -> None:
    from tanhui.mall import service as mall_service

    mall_service.erase_citizen(session, citizen_id)


def _install_mall() -> None:
    from tanhui.identity import service as identity_service

    if _mall_export not in identity_service.EXPORT_SECTIONS:
        identity_service.EXPORT_SECTIONS.append(_mall_export)
    if _mall_erase not in identity_service.ERASE_HOOKS:
        identity_service.ERASE_HOOKS.append(_mall_erase)


def _ledger_transfer_refs(session: Session) -> Iterator[list[str]]:
    after = 0
    while ids := ledger_service.transfer_ids(session, after_id=after):
        yield [str(i) for i in ids]
        after = ids[-1]


TRUST_SOURCES: dict[str, Callable[[Session], Iterator[list[str]]]] = {
    trust_leaf.LEDGER_TRANSFER: _ledger_transfer_refs,
    **{
        kind: partial(registry_service.event_refs, kind=kind)
        for kind in registry_service.LEAF_KINDS.values()
    },
}
"""Leaf kind -> every ref that must have a leaf, page by page; `tanhui trust audit` reports the rest."""


def unlogged_records(session: Session) -> list[trust_service.AuditProblem]:
    """Records that should be in the trust log but have no leaf (nor a queued one)."""
    problems: list[trust_service.AuditProblem] = []
    for kind, pages in TRUST_SOURCES.items():
        for refs in pages(session):
            problems.extend(
                trust_service.AuditProblem(None, kind, ref, "record has no leaf in the log")
                for ref in trust_service.unlogged(session, kind, refs)
            )
    return problems
