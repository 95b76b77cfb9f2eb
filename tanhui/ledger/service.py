"""Ledger use cases: accounts, balanced transfers (one or many), holds, reversals and the journal check.

Every function flushes and never commits: the caller's transaction makes a use case atomic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, Select, bindparam, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tanhui.kit.bulk import execute_many, fetch_all
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import (
    in_list,
    in_values,
    insert_ignore,
    postgres,
    rows_table,
    serialised_writers,
)
from tanhui.kit.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from tanhui.kit.fingerprint import fingerprint
from tanhui.ledger.models import Account, Asset, Hold, Posting, Transfer

# The assets every installation has; the registry adds one credit asset per batch.
CO2E_MG = "CO2E_MG"
POINT = "POINT"
CNY_FEN = "CNY_FEN"
BASE_ASSETS = {
    CO2E_MG: ("mg CO2e", "Reductions, milligrams of CO2 equivalent"),
    POINT: ("point", "Carbon points (碳积分)"),
    CNY_FEN: ("fen", "Money, CNY cents (分)"),
}

PLATFORM = "platform"  # owner_type and owner_id of the platform's own accounts

_CHUNK = 500  # keys per IN (...) list: well under SQLite's bound-parameter limit


class InsufficientFunds(Conflict):
    code = "insufficient_funds"


class UnbalancedTransfer(InvalidInput):
    code = "unbalanced_transfer"


class AccountNotFound(NotFound):
    code = "account_not_found"


class HoldNotPending(Conflict):
    code = "hold_not_pending"


class AlreadyReversed(Conflict):
    code = "already_reversed"


class PostingRecord(NamedTuple):
    """A posting as the journal holds it; a tuple because a batch transfer builds a thousand."""

    account_id: int
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A committed (or about to be committed) transfer as the journal holds it."""

    id: int
    idempotency_key: str
    kind: str
    created_at: datetime
    metadata: Mapping[str, Any]
    reverses_id: int | None
    postings: tuple[PostingRecord, ...]
    replayed: bool = False  # True when the idempotency key had already been applied


@dataclass(frozen=True, slots=True)
class TransferRequest:
    idempotency_key: str
    kind: str
    postings: Sequence[tuple[int, int]]  # (account_id, signed amount)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    reverses_id: int | None = None

    def request_hash(self) -> str:
        return fingerprint(
            {
                "kind": self.kind,
                "postings": sorted(self.postings),
                "metadata": dict(self.metadata),
                "reverses": self.reverses_id,
            }
        )


@dataclass(frozen=True, slots=True)
class Balance:
    account_id: int
    asset: str
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held


JournalListener = Callable[[Session, Sequence[TransferRecord]], None]
_listeners: list[JournalListener] = []


def add_journal_listener(listener: JournalListener) -> None:
    """Called inside the writing transaction with every new transfer (the trust log's feed)."""
    if listener not in _listeners:
        _listeners.append(listener)


# --- assets and accounts ---------------------------------------------------------------------------


def ensure_asset(session: Session, code: str, *, unit: str, description: str = "") -> None:
    session.execute(
        insert_ignore(session, Asset.__table__, ["code"]),  # type: ignore[arg-type]
        {
            "code": code,
            "unit": unit,
            "description": description,
            "created_at": utcnow(),
        },
    )


def open_account(
    session: Session,
    *,
    owner_type: str,
    owner_id: str | int,
    asset: str,
    name: str = "main",
    bounded: bool = True,
) -> Account:
    """The owner's account for an asset, created on first use (safe against a concurrent creator)."""
    key = (owner_type, str(owner_id), asset, name)
    account = _find_account(session, *key)
    if account is None:
        session.execute(
            insert_ignore(  # type: ignore[arg-type]
                session,
                Account.__table__,  # type: ignore[arg-type]
                ["owner_type", "owner_id", "asset_code", "name"],
            ),
            {
                "owner_type": owner_type,
                "owner_id": str(owner_id),
                "asset_code": asset,
                "name": name,
                "bounded": bounded,
                "balance": 0,
                "held": 0,
                "created_at": utcnow(),
            },
        )
        account = _find_account(session, *key)
        assert account is not None
    _remember_accounts(session, {account.id: (asset, account.bounded)})
    return account


def _find_account(
    session: Session, owner_type: str, owner_id: str, asset: str, name: str
) -> Account | None:
    return session.scalars(
        select(Account).where(
            Account.owner_type == owner_type,
            Account.owner_id == owner_id,
            Account.asset_code == asset,
            Account.name == name,
        )
    ).one_or_none()


def open_accounts(
    session: Session,
    *,
    owner_type: str,
    owner_ids: Iterable[str | int],
    asset: str,
    name: str = "main",
) -> dict[str, int]:
    """Bounded accounts for many owners at once: owner_id -> account id (for batch ingestion)."""
    wanted = sorted({str(o) for o in owner_ids})
    found: dict[str, int] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(_account_ids(session, owner_type, chunk, asset, name))
        missing = [o for o in chunk if o not in found]
        if missing:
            now = utcnow()
            session.execute(
                insert_ignore(  # type: ignore[arg-type]
                    session,
                    Account.__table__,  # type: ignore[arg-type]
                    ["owner_type", "owner_id", "asset_code", "name"],
                ),
                [
                    {
                        "owner_type": owner_type,
                        "owner_id": o,
                        "asset_code": asset,
                        "name": name,
                        "bounded": True,
                        "balance": 0,
                        "held": 0,
                        "created_at": now,
                    }
                    for o in missing
                ],
            )
            found.update(_account_ids(session, owner_type, missing, asset, name))
    _remember_accounts(session, dict.fromkeys(found.values(), (asset, True)))
    return found


def _account_ids(
    session: Session, owner_type: str, owner_ids: list[str], asset: str, name: str
) -> dict[str, int]:
    params = {"owner_type": owner_type, "owner_ids": owner_ids, "asset": asset, "name": name}
    return dict(fetch_all(session, _account_ids_stmt(postgres(session)), params))


@lru_cache(maxsize=2)
def _account_ids_stmt(on_postgres: bool) -> Select[Any]:
    # Core columns, not ORM attributes: a batch reads hundreds of rows and the ORM loading is slower.
    c = _table.c
    return select(c.owner_id, c.id).where(
        c.owner_type == bindparam("owner_type"),
        in_list(on_postgres, c.owner_id, "owner_ids"),
        c.asset_code == bindparam("asset"),
        c.name == bindparam("name"),
    )


def platform_account(session: Session, asset: str, name: str) -> Account:
    """One of the platform's unbounded system accounts (issuance, expiry, escrow sinks...)."""
    return open_account(
        session,
        owner_type=PLATFORM,
        owner_id=PLATFORM,
        asset=asset,
        name=name,
        bounded=False,
    )


def platform_account_id(session: Session, asset: str, name: str) -> int:
    """`platform_account`'s id, read without loading the ORM row (a batch asks for two)."""
    found = fetch_all(
        session,
        _platform_stmt(postgres(session)),
        {"owner_type": PLATFORM, "owner_id": PLATFORM, "asset": asset, "name": name},
    )
    if not found:
        return platform_account(session, asset, name).id  # created on first use
    account_id, bounded = found[0]
    _remember_accounts(session, {account_id: (asset, bounded)})
    return int(account_id)


@lru_cache(maxsize=2)
def _platform_stmt(on_postgres: bool) -> Select[Any]:
    c = _table.c
    return select(c.id, c.bounded).where(
        c.owner_type == bindparam("owner_type"),
        c.owner_id == bindparam("owner_id"),
        c.asset_code == bindparam("asset"),
        c.name == bindparam("name"),
    )


def balance(session: Session, account_id: int) -> Balance:
    account = session.get(Account, account_id)
    if account is None:
        raise AccountNotFound(f"account {account_id} does not exist", field="account_id")
    if account.bounded:
        return Balance(account.id, account.asset_code, account.balance, account.held)
    total = session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0)).where(Posting.account_id == account_id)
    )
    return Balance(account.id, account.asset_code, int(total or 0), 0)


def balances(session: Session, *, owner_type: str, owner_id: str | int) -> list[Balance]:
    accounts = session.scalars(
        select(Account)
        .where(Account.owner_type == owner_type, Account.owner_id == str(owner_id))
        .order_by(Account.asset_code, Account.name)
    ).all()
    return [balance(session, a.id) for a in accounts]


# --- transfers -------------------------------------------------------------------------------------


def transfer(
    session: Session,
    *,
    idempotency_key: str,
    kind: str,
    postings: Sequence[tuple[int, int]],
    metadata: Mapping[str, Any] | None = None,
    reverses_id: int | None = None,
) -> TransferRecord:
    """One balanced transfer. Replaying the same key and body returns the original transfer."""
    request = TransferRequest(idempotency_key, kind, tuple(postings), metadata or {}, reverses_id)
    return transfer_many(session, [request])[0]


def transfer_many(session: Session, requests: Sequence[TransferRequest]) -> list[TransferRecord]:
    """Apply many transfers in one go: one balance update per account, bulk inserts.

    Atomic: if any transfer would overdraw a bounded account, none is applied. Results come back in
    request order; replays of already-applied keys are marked `replayed`.
    """
    if not requests:
        return []
    try:
        with session.begin_nested():
            return _transfer_many(session, requests)
    except IntegrityError as exc:
        # A concurrent transaction committed one of our idempotency keys (or reversed the same transfer)
        # between our look-up and our insert. Its rows are visible now; resolve against them once.
        if "reverses_id" in str(exc.orig):
            raise AlreadyReversed("this transfer has already been reversed") from exc
        with session.begin_nested():
            return _transfer_many(session, requests)


def _transfer_many(session: Session, requests: Sequence[TransferRequest]) -> list[TransferRecord]:
    hashes = [r.request_hash() for r in requests]
    existing = _existing_transfers(session, [r.idempotency_key for r in requests])
    results: list[TransferRecord | None] = [None] * len(requests)
    fresh: list[int] = []
    first_in_batch: dict[str, int] = {}
    for i, (request, digest) in enumerate(zip(requests, hashes, strict=True)):
        key = request.idempotency_key
        if key in existing:
            known_hash, record = existing[key]
            if known_hash != digest:
                raise IdempotencyConflict(key)
            results[i] = record
        elif key in first_in_batch:
            if hashes[first_in_batch[key]] != digest:
                raise IdempotencyConflict(key)
        else:
            first_in_batch[key] = i
            fresh.append(i)

    if fresh:
        new_records = _apply(session, [requests[i] for i in fresh], [hashes[i] for i in fresh], {})
        for i, record in zip(fresh, new_records, strict=True):
            results[i] = record
    for i, request in enumerate(requests):
        if results[i] is None:  # a duplicate key inside this batch
            results[i] = results[first_in_batch[request.idempotency_key]]
    return [r for r in results if r is not None]


def _existing_transfers(
    session: Session, keys: Sequence[str]
) -> dict[str, tuple[str, TransferRecord]]:
    found: dict[str, tuple[str, TransferRecord]] = {}
    unique = sorted(set(keys))
    stmt = _transfer_keys_stmt(postgres(session))
    for start in range(0, len(unique), _CHUNK):
        rows = fetch_all(session, stmt, {"keys": unique[start : start + _CHUNK]})
        if rows:
            records = {r.id: r for r in _load_records(session, [row[0] for row in rows], True)}
            for transfer_id, key, request_hash in rows:
                found[key] = (request_hash, records[transfer_id])
    return found


@lru_cache(maxsize=2)
def _transfer_keys_stmt(on_postgres: bool) -> Select[Any]:
    c = _transfers.c  # Core columns: this runs for every transfer, a batch's included
    return select(c.id, c.idempotency_key, c.request_hash).where(
        in_list(on_postgres, c.idempotency_key, "keys")
    )


def _apply(
    session: Session,
    requests: Sequence[TransferRequest],
    hashes: Sequence[str],
    releases: Mapping[int, int],
) -> list[TransferRecord]:
    """Validate, move balances, insert the journal rows, tell the listeners.

    `releases` maps account id -> held amount this transfer consumes (posting a hold).
    """
    account_ids = {a for r in requests for a, _ in r.postings}
    accounts = _accounts_by_id(session, account_ids)
    deltas: dict[int, int] = defaultdict(int)
    for request in requests:
        if not request.idempotency_key or len(request.idempotency_key) > 200:
            raise InvalidInput("idempotency key must be 1-200 characters", field="idempotency_key")
        if len(request.postings) < 2:
            raise UnbalancedTransfer("a transfer needs at least two postings", field="postings")
        sums: dict[str, int] = defaultdict(int)
        for account_id, amount in request.postings:
            if type(amount) is not int or amount == 0:
                raise InvalidInput("posting amounts are non-zero integers", field="postings")
            if account_id not in accounts:
                raise AccountNotFound(f"account {account_id} does not exist", field="postings")
            asset, bounded = accounts[account_id]
            sums[asset] += amount
            if bounded:
                deltas[account_id] += amount
        unbalanced = {asset: total for asset, total in sums.items() if total != 0}
        if unbalanced:
            raise UnbalancedTransfer(
                f"postings must sum to zero per asset, got {unbalanced}",
                field="postings",
            )

    _move_balances(session, deltas, releases)

    now = utcnow()
    table = Transfer.__table__
    ids = (
        session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True),  # type: ignore[arg-type]
            [
                {
                    "idempotency_key": r.idempotency_key,
                    "request_hash": h,
                    "kind": r.kind,
                    "metadata": dict(r.metadata),  # the Core column key, not the ORM attribute
                    "reverses_id": r.reverses_id,
                    "created_at": now,
                }
                for r, h in zip(requests, hashes, strict=True)
            ],
        )
        .scalars()
        .all()
    )
    rows: list[dict[str, Any]] = []
    records: list[TransferRecord] = []
    for transfer_id, request in zip(ids, requests, strict=True):
        postings = tuple(
            PostingRecord(account_id, accounts[account_id][0], amount)
            for account_id, amount in request.postings
        )
        rows.extend(
            {
                "transfer_id": transfer_id,
                "account_id": p.account_id,
                "asset_code": p.asset,
                "amount": p.amount,
            }
            for p in postings
        )
        records.append(
            TransferRecord(
                transfer_id,
                request.idempotency_key,
                request.kind,
                now,
                dict(request.metadata),
                request.reverses_id,
                postings,
            )
        )
    execute_many(session, _INSERT_POSTING, rows)
    for listener in _listeners:
        listener(session, records)
    return records


# Accounts `open_accounts` just read or created, so that the transfer that follows need not read them
# again: id -> (asset, bounded), which no account ever changes. Kept in session.info and forgotten
# whenever a transaction or savepoint of the session ends, so an entry never outlives the
# (sub)transaction that saw the row (a rolled-back savepoint may have created it).
_KNOWN_ACCOUNTS = "tanhui.ledger.known_accounts"


def _remember_accounts(session: Session, accounts: Mapping[int, tuple[str, bool]]) -> None:
    session.info.setdefault(_KNOWN_ACCOUNTS, {}).update(accounts)


@event.listens_for(Session, "after_transaction_end")
def _forget_accounts(session: Session, _transaction: Any) -> None:
    session.info.pop(_KNOWN_ACCOUNTS, None)


def _accounts_by_id(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, bool]]:
    known: dict[int, tuple[str, bool]] = session.info.get(_KNOWN_ACCOUNTS, {})
    found = {i: known[i] for i in ids if i in known}
    wanted = sorted(set(ids) - found.keys())
    for start in range(0, len(wanted), _CHUNK):
        rows = session.execute(
            select(_table.c.id, _table.c.asset_code, _table.c.bounded).where(
                in_values(session, _table.c.id, wanted[start : start + _CHUNK])
            )
        )
        found.update({i: (asset, bounded) for i, asset, bounded in rows.all()})
    return found


_table = Account.__table__
_transfers = Transfer.__table__
_INSERT_POSTING = insert(Posting.__table__)  # type: ignore[arg-type]
_CREDIT = (
    update(_table)  # type: ignore[arg-type]
    .where(_table.c.id == bindparam("account_id"))
    .values(balance=_table.c.balance + bindparam("delta"))
)
_DEBIT = (
    update(_table)  # type: ignore[arg-type]
    .where(
        _table.c.id == bindparam("account_id"),
        _table.c.balance - _table.c.held + bindparam("delta") + bindparam("release") >= 0,
    )
    .values(
        balance=_table.c.balance + bindparam("delta"),
        held=_table.c.held - bindparam("release"),
    )
)


def _move_balances(
    session: Session, deltas: Mapping[int, int], releases: Mapping[int, int]
) -> None:
    # Lock order = account id order, so two transactions touching the same accounts cannot deadlock.
    credits = []
    for account_id in sorted(set(deltas) | set(releases)):
        delta, release = deltas.get(account_id, 0), releases.get(account_id, 0)
        if delta >= 0 and release == 0:
            if delta:
                credits.append({"account_id": account_id, "delta": delta})
            continue
        if credits:  # keep id order across the two statement kinds
            _credit(session, credits)
            credits = []
        result = session.execute(
            _DEBIT, {"account_id": account_id, "delta": delta, "release": release}
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise InsufficientFunds(
                f"account {account_id} has insufficient available balance",
                field="amount",
            )
    if credits:
        _credit(session, credits)


def _credit(session: Session, credits: list[dict[str, int]]) -> None:
    """Add each delta to its account's balance; `credits` are in account id order."""
    if serialised_writers(session):
        execute_many(session, _CREDIT, credits)
        return
    # PostgreSQL runs an executemany as one UPDATE per account (a batch's 1,000 accounts cost 40 to
    # 100 ms); one UPDATE joined to the deltas costs a fifth of that. The join visits rows in its
    # plan's order, so the rows are first locked in id order: two batches crediting the same
    # accounts then wait for each other instead of deadlocking.
    ids = [c["account_id"] for c in credits]
    session.execute(
        select(_table.c.id)
        .where(in_values(session, _table.c.id, ids))
        .order_by(_table.c.id)
        .with_for_update()
    )
    deltas = rows_table(
        session,
        [("account_id", BigInteger()), ("delta", BigInteger())],
        [(c["account_id"], c["delta"]) for c in credits],
    )
    session.execute(
        update(_table)  # type: ignore[arg-type]
        .where(_table.c.id == deltas.c.account_id)
        .values(balance=_table.c.balance + deltas.c.delta)
    )


def reverse(
    session: Session,
    transfer_id: int,
    *,
    idempotency_key: str,
    kind: str = "reversal",
    metadata: Mapping[str, Any] | None = None,
) -> TransferRecord:
    """A new transfer that undoes `transfer_id` exactly; a transfer is reversed at most once."""
    original = get_transfer_records(session, [transfer_id])
    if not original:
        raise NotFound(f"transfer {transfer_id} does not exist", code="transfer_not_found")
    if original[0].reverses_id is not None:
        raise Conflict("a reversal cannot itself be reversed", code="cannot_reverse_reversal")
    earlier = session.execute(
        select(Transfer.id, Transfer.idempotency_key).where(Transfer.reverses_id == transfer_id)
    ).one_or_none()
    if earlier is not None and earlier.idempotency_key != idempotency_key:
        raise AlreadyReversed(
            f"transfer {transfer_id} was already reversed by transfer {earlier.id}",
            extra={"reversal_id": earlier.id},
        )
    postings = [(p.account_id, -p.amount) for p in original[0].postings]
    meta = {"reason": "reversal", **(metadata or {})}
    return transfer(
        session,
        idempotency_key=idempotency_key,
        kind=kind,
        postings=postings,
        metadata=meta,
        reverses_id=transfer_id,
    )


def get_transfer_records(session: Session, ids: Sequence[int]) -> list[TransferRecord]:
    """Transfers as the journal holds them now (the trust log's audit re-encodes these)."""
    return _load_records(session, ids, False)


def _load_records(session: Session, ids: Sequence[int], replayed: bool) -> list[TransferRecord]:
    wanted = sorted(set(ids))
    out: list[TransferRecord] = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        postings: dict[int, list[PostingRecord]] = defaultdict(list)
        for row in session.execute(
            select(
                Posting.transfer_id,
                Posting.account_id,
                Posting.asset_code,
                Posting.amount,
            )
            .where(Posting.transfer_id.in_(chunk))
            .order_by(Posting.id)
        ):
            postings[row.transfer_id].append(
                PostingRecord(row.account_id, row.asset_code, row.amount)
            )
        for t in session.execute(
            select(Transfer).where(Transfer.id.in_(chunk)).order_by(Transfer.id)
        ).scalars():
            out.append(
                TransferRecord(
                    t.id,
                    t.idempotency_key,
                    t.kind,
                    t.created_at,
                    dict(t.meta or {}),
                    t.reverses_id,
                    tuple(postings[t.id]),
                    replayed,
                )
            )
    return out


def transfer_ids(session: Session, *, after_id: int = 0, limit: int = 10_000) -> list[int]:
    """Transfer ids in journal order, a page at a time (the trust log checks each one has a leaf)."""
    return list(
        session.scalars(
            select(Transfer.id).where(Transfer.id > after_id).order_by(Transfer.id).limit(limit)
        )
    )


def transfers_of(
    session: Session, account_id: int, *, limit: int = 50, before_id: int | None = None
) -> list[TransferRecord]:
    """An account's statement, newest first (keyset pagination by transfer id)."""
    stmt = select(Posting.transfer_id).where(Posting.account_id == account_id)
    if before_id is not None:
        stmt = stmt.where(Posting.transfer_id < before_id)
    ids = list(session.scalars(stmt.order_by(Posting.transfer_id.desc()).limit(limit)))
    records = {r.id: r for r in get_transfer_records(session, ids)}
    return [records[i] for i in ids]


# --- holds (two-phase transfers) -------------------------------------------------------------------


def hold(
    session: Session,
    *,
    idempotency_key: str,
    account_id: int,
    destination_id: int,
    amount: int,
    kind: str,
    metadata: Mapping[str, Any] | None = None,
    expires_at: datetime | None = None,
) -> Hold:
    """Reserve `amount` of a bounded account for a later post to `destination_id` (or a void)."""
    if type(amount) is not int or amount <= 0:
        raise InvalidInput("a hold amount is a positive integer", field="amount")
    digest = fingerprint(
        {
            "a": account_id,
            "d": destination_id,
            "n": amount,
            "k": kind,
            "m": dict(metadata or {}),
        }
    )
    existing = session.scalars(
        select(Hold).where(Hold.idempotency_key == idempotency_key)
    ).one_or_none()
    if existing is not None:
        if existing.request_hash != digest:
            raise IdempotencyConflict(idempotency_key)
        return existing
    accounts = _accounts_by_id(session, [account_id, destination_id])
    for aid in (account_id, destination_id):
        if aid not in accounts:
            raise AccountNotFound(f"account {aid} does not exist", field="account_id")
    if accounts[account_id][0] != accounts[destination_id][0]:
        raise InvalidInput("a hold moves one asset between two accounts", field="destination_id")
    with session.begin_nested():
        if accounts[account_id][1]:
            reserved = session.execute(
                update(Account)
                .where(Account.id == account_id, Account.balance - Account.held >= amount)
                .values(held=Account.held + amount)
            )
            if reserved.rowcount != 1:  # type: ignore[attr-defined]
                raise InsufficientFunds(
                    f"account {account_id} has insufficient available balance",
                    field="amount",
                )
        record = Hold(
            idempotency_key=idempotency_key,
            request_hash=digest,
            account_id=account_id,
            destination_id=destination_id,
            amount=amount,
            kind=kind,
            meta=dict(metadata or {}),
            status="pending",
            created_at=utcnow(),
            expires_at=expires_at,
        )
        session.add(record)
        session.flush()
    return record


def _pending_hold(session: Session, hold_id: int, new_status: str) -> Hold:
    held = session.get(Hold, hold_id)
    if held is None:
        raise NotFound(f"hold {hold_id} does not exist", code="hold_not_found")
    # The conditional update is the once-only guard: of two racing post/void calls, one wins.
    changed = session.execute(
        update(Hold)
        .where(Hold.id == hold_id, Hold.status == "pending")
        .values(status=new_status, resolved_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(held)
        raise HoldNotPending(f"hold {hold_id} is {held.status}", extra={"status": held.status})
    session.refresh(held)
    return held


def post_hold(session: Session, hold_id: int) -> TransferRecord:
    """Turn a pending hold into its transfer. Posting an already posted hold returns its transfer."""
    current = session.get(Hold, hold_id)
    if current is not None and current.status == "posted" and current.transfer_id is not None:
        return get_transfer_records(session, [current.transfer_id])[0]
    held = _pending_hold(session, hold_id, "posted")
    request = TransferRequest(
        idempotency_key=f"hold:{held.id}:post",
        kind=held.kind,
        postings=((held.account_id, -held.amount), (held.destination_id, held.amount)),
        metadata={**(held.meta or {}), "hold_id": held.id},
    )
    bounded = _accounts_by_id(session, [held.account_id])[held.account_id][1]
    releases = {held.account_id: held.amount} if bounded else {}
    record = _apply(session, [request], [request.request_hash()], releases)[0]
    held.transfer_id = record.id
    session.flush()
    return record


def void_hold(session: Session, hold_id: int) -> Hold:
    """Release a pending hold; the reserved amount becomes available again."""
    current = session.get(Hold, hold_id)
    if current is not None and current.status == "voided":
        return current
    held = _pending_hold(session, hold_id, "voided")
    if _accounts_by_id(session, [held.account_id])[held.account_id][1]:
        session.execute(
            update(Account)
            .where(Account.id == held.account_id)
            .values(held=Account.held - held.amount)
        )
    return held


def void_expired_holds(session: Session, *, now: datetime | None = None, limit: int = 1000) -> int:
    now = now or utcnow()
    ids = session.scalars(
        select(Hold.id).where(Hold.status == "pending", Hold.expires_at <= now).limit(limit)
    ).all()
    count = 0
    for hold_id in ids:
        try:
            void_hold(session, hold_id)
            count += 1
        except HoldNotPending:
            pass  # posted or voided concurrently
    return count


# --- the journal check -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckProblem:
    kind: str
    subject: str
    detail: str


def check(session: Session) -> list[CheckProblem]:
    """Recompute everything the journal implies and report every disagreement."""
    problems: list[CheckProblem] = []
    for transfer_id, asset, total in session.execute(
        select(Posting.transfer_id, Posting.asset_code, func.sum(Posting.amount))
        .group_by(Posting.transfer_id, Posting.asset_code)
        .having(func.sum(Posting.amount) != 0)
    ):
        problems.append(
            CheckProblem(
                "unbalanced_transfer",
                f"transfer {transfer_id}",
                f"{asset} sums to {total}",
            )
        )
    for transfer_id, count in session.execute(
        select(Transfer.id, func.count(Posting.id))
        .outerjoin(Posting, Posting.transfer_id == Transfer.id)
        .group_by(Transfer.id)
        .having(func.count(Posting.id) < 2)
    ):
        problems.append(
            CheckProblem("short_transfer", f"transfer {transfer_id}", f"{count} posting(s)")
        )
    for posting_id, account_id in session.execute(
        select(Posting.id, Posting.account_id)
        .join(Account, Account.id == Posting.account_id)
        .where(Posting.asset_code != Account.asset_code)
    ):
        problems.append(
            CheckProblem(
                "asset_mismatch",
                f"account {account_id}",
                f"posting {posting_id} has another asset",
            )
        )

    journal = (
        select(Posting.account_id, func.sum(Posting.amount).label("total"))
        .group_by(Posting.account_id)
        .subquery()
    )
    pending = (
        select(Hold.account_id, func.sum(Hold.amount).label("total"))
        .where(Hold.status == "pending")
        .group_by(Hold.account_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Account.id,
            Account.owner_type,
            Account.owner_id,
            Account.asset_code,
            Account.balance,
            Account.held,
            func.coalesce(journal.c.total, 0),
            func.coalesce(pending.c.total, 0),
        )
        .outerjoin(journal, journal.c.account_id == Account.id)
        .outerjoin(pending, pending.c.account_id == Account.id)
        .where(Account.bounded.is_(True))
    )
    for (
        account_id,
        owner_type,
        owner_id,
        asset,
        cached,
        held,
        total,
        pending_total,
    ) in rows:
        subject = f"account {account_id} ({owner_type}:{owner_id} {asset})"
        if cached != total:
            problems.append(
                CheckProblem("balance_mismatch", subject, f"cached {cached}, journal {total}")
            )
        if held != pending_total:
            problems.append(
                CheckProblem(
                    "held_mismatch",
                    subject,
                    f"held {held}, pending holds {pending_total}",
                )
            )
        if total < 0:
            problems.append(CheckProblem("negative_balance", subject, f"journal balance {total}"))
    return problems
