"""Incentives use cases: award points for reductions, revoke them, spend them oldest lot first, expire them.

Every function flushes and never commits. See models.py for the design (carry, lots, campaigns).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Select, Table, func, insert, select, update
from sqlalchemy.orm import Session

from tanhui.incentives.models import Award as AwardRow
from tanhui.incentives.models import Campaign, Carry, Lot, LotUse, Rule
from tanhui.kit.bulk import execute_many, fetch_all
from tanhui.kit.db import utcnow
from tanhui.kit.dialect import (
    for_update,
    in_list,
    in_values,
    insert_ignore,
    postgres,
    serialised_writers,
    upsert_add,
    upsert_set,
)
from tanhui.kit.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from tanhui.kit.settings import get_settings
from tanhui.ledger import service as ledger_service

POINT = ledger_service.POINT
CITIZEN = "citizen"
BASE_CAMPAIGN = "base"
ISSUANCE = "issuance"
EXPIRY = "expiry"

# Defaults when no rule row exists: 1 point per 10 g (as Chengdu's 碳惠天府 and most city platforms
# count in grams, 10 g per point keeps a metro ride worth a few points), expiry at the end of the year
# after earning, and 100 points shown as worth 100 fen (1 point = 1 fen).
DEFAULT_MG_PER_POINT = 10_000
DEFAULT_EXPIRY_YEARS = 1
DEFAULT_FEN_PER_100_POINTS = 100

_CHUNK = 500
_CARRY: Table = Carry.__table__  # type: ignore[assignment]
_LOT: Table = Lot.__table__  # type: ignore[assignment]
_AWARD: Table = AwardRow.__table__  # type: ignore[assignment]
_INSERT_AWARD = insert(_AWARD)


class PointsSpent(Conflict):
    code = "points_spent"


class InsufficientPoints(Conflict):
    code = "insufficient_points"


class Award(NamedTuple):
    """A reduction to convert into points (the activity pipeline's request).

    A named tuple rather than a frozen dataclass: as immutable, and a batch builds hundreds of
    them, which a tuple does several times faster."""

    citizen_id: int
    reduction_mg: int
    earned_at: datetime
    source: str  # e.g. "activity:123"; revoke_points() finds awards by it
    idempotency_key: str
    campaign: str = BASE_CAMPAIGN


@dataclass(frozen=True, slots=True)
class Companion:
    """Postings of another asset that go in the same ledger transfer as a batch's points.

    The activity pipeline credits a batch's CO2E and its points together: one balanced transfer
    (one journal entry, one trust-log leaf) per batch instead of two. The transfer takes this
    key, kind and metadata; without a companion `award_points` makes its own `points.award`.
    """

    idempotency_key: str
    kind: str
    postings: Sequence[tuple[int, int]]
    metadata: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PointRule:
    effective_from: datetime
    mg_per_point: int
    expiry_years: int
    fen_per_100_points: int

    def expires_on(self, earned_on: date) -> date:
        return date(earned_on.year + self.expiry_years, 12, 31)


DEFAULT_RULE = PointRule(
    datetime(2000, 1, 1, tzinfo=UTC),
    DEFAULT_MG_PER_POINT,
    DEFAULT_EXPIRY_YEARS,
    DEFAULT_FEN_PER_100_POINTS,
)


@dataclass(frozen=True, slots=True)
class LotView:
    id: int
    earned_on: date
    expires_on: date
    points: int
    remaining: int
    expired: int


@dataclass(frozen=True, slots=True)
class PointsSummary:
    citizen_id: int
    balance: int
    held: int
    available: int
    carry_mg: int
    mg_per_point: int
    fen_per_100_points: int
    value_fen: int  # available points at the shown value, rounded down
    lots: list[LotView]
    expiring: list[tuple[date, int]]  # (expires_on, points) for every future expiry date


# --- rules and campaigns ---------------------------------------------------------------------------


def rules(session: Session) -> list[PointRule]:
    rows = session.scalars(select(Rule).order_by(Rule.effective_from, Rule.id)).all()
    out = [DEFAULT_RULE]
    out += [
        PointRule(r.effective_from, r.mg_per_point, r.expiry_years, r.fen_per_100_points)
        for r in rows
    ]
    return out


def rule_at(session: Session, at: datetime | None = None) -> PointRule:
    return _pick(rules(session), at or utcnow())


def _pick(all_rules: Sequence[PointRule], at: datetime) -> PointRule:
    chosen = all_rules[0]
    for rule in all_rules:
        if rule.effective_from <= at:
            chosen = rule
    return chosen


def set_rule(
    session: Session,
    *,
    effective_from: datetime,
    mg_per_point: int | None = None,
    expiry_years: int | None = None,
    fen_per_100_points: int | None = None,
    note: str = "",
) -> PointRule:
    """Add a rule row; unspecified fields keep the values of the rule in force at `effective_from`."""
    if effective_from.tzinfo is None:
        raise InvalidInput("effective_from must carry a time zone", field="effective_from")
    base = rule_at(session, effective_from)
    values = PointRule(
        effective_from,
        base.mg_per_point if mg_per_point is None else mg_per_point,
        base.expiry_years if expiry_years is None else expiry_years,
        base.fen_per_100_points if fen_per_100_points is None else fen_per_100_points,
    )
    if values.mg_per_point <= 0:
        raise InvalidInput("mg_per_point must be positive", field="mg_per_point")
    if values.expiry_years < 0 or values.fen_per_100_points < 0:
        raise InvalidInput("expiry_years and fen_per_100_points are >= 0", field="expiry_years")
    session.add(
        Rule(
            effective_from=effective_from,
            mg_per_point=values.mg_per_point,
            expiry_years=values.expiry_years,
            fen_per_100_points=values.fen_per_100_points,
            note=note,
            created_at=utcnow(),
        )
    )
    session.flush()
    return values


def set_campaign_budget(
    session: Session, code: str, *, budget_points: int | None, name: str | None = None
) -> Campaign:
    """Create or update a campaign; `budget_points=None` lifts the cap."""
    if budget_points is not None and budget_points < 0:
        raise InvalidInput("budget_points must be >= 0", field="budget_points")
    if not code or len(code) > 64:
        raise InvalidInput("campaign code must be 1-64 characters", field="code")
    campaign = session.get(Campaign, code)
    now = utcnow()
    if campaign is None:
        campaign = Campaign(code=code, name=name or code, created_at=now)
        session.add(campaign)
    elif name is not None:
        campaign.name = name
    campaign.budget_points = budget_points
    campaign.updated_at = now
    session.flush()
    return campaign


@dataclass(frozen=True, slots=True)
class CampaignView:
    code: str
    name: str
    budget_points: int | None
    issued_points: int

    @property
    def remaining_points(self) -> int | None:
        if self.budget_points is None:
            return None
        return max(0, self.budget_points - self.issued_points)


def campaigns(session: Session) -> list[CampaignView]:
    issued = dict(
        session.execute(
            select(AwardRow.campaign, func.sum(AwardRow.points - AwardRow.revoked_points)).group_by(
                AwardRow.campaign
            )
        ).all()
    )
    rows = session.scalars(select(Campaign).order_by(Campaign.code)).all()
    out = [
        CampaignView(c.code, c.name, c.budget_points, int(issued.get(c.code) or 0)) for c in rows
    ]
    known = {c.code for c in rows}
    out += [
        CampaignView(code, code, None, int(total or 0))
        for code, total in sorted(issued.items())
        if code not in known
    ]
    return out


def _issued(session: Session, campaign: str) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(AwardRow.points - AwardRow.revoked_points), 0)).where(
            AwardRow.campaign == campaign
        )
    )
    return int(total or 0)


# --- awarding --------------------------------------------------------------------------------------


def local_day(at: datetime, zone: tzinfo | None = None) -> date:
    """The platform-zone date of `at`; a batch passes the zone it looked up once."""
    return at.astimezone(zone or get_settings().zone).date()


def _award_hash(award: Award) -> str:
    """`fingerprint({"c", "mg", "at", "s", "k"})` of the award, written out by hand because a batch
    hashes hundreds (`_validate` has made c and mg plain ints): the same bytes, in a third of the
    time. tests/incentives pins it to `fingerprint`."""
    at = award.earned_at.astimezone(UTC).isoformat()
    source, campaign = _json_string(award.source), _json_string(award.campaign)
    text = (
        f'{{"at":"{at}","c":{award.citizen_id},"k":{campaign},'
        f'"mg":{award.reduction_mg},"s":{source}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _json_string(value: str) -> str:
    """`json.dumps(value, ensure_ascii=False)`; printable ASCII with nothing to escape (an award's
    source and campaign, nearly always) is only quoted."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


def _validate(award: Award) -> None:
    if type(award.citizen_id) is not int or award.citizen_id <= 0:
        raise InvalidInput("citizen_id must be a positive integer", field="citizen_id")
    if type(award.reduction_mg) is not int or award.reduction_mg < 0:
        raise InvalidInput("reduction_mg must be a non-negative integer", field="reduction_mg")
    if award.earned_at.tzinfo is None:
        raise InvalidInput("earned_at must carry a time zone", field="earned_at")
    if not award.idempotency_key or len(award.idempotency_key) > 150:
        raise InvalidInput("idempotency_key must be 1-150 characters", field="idempotency_key")
    if not award.source or len(award.source) > 200:
        raise InvalidInput("source must be 1-200 characters", field="source")
    if not award.campaign or len(award.campaign) > 64:
        raise InvalidInput("campaign must be 1-64 characters", field="campaign")


def _lock_carries(session: Session, citizen_ids: Sequence[int]) -> dict[int, Carry]:
    wanted = sorted(set(citizen_ids))
    session.execute(
        insert_ignore(session, Carry.__table__, ["citizen_id"]),  # type: ignore[arg-type]
        [{"citizen_id": c, "carry_mg": 0, "total_mg": 0, "total_points": 0} for c in wanted],
    )
    out: dict[int, Carry] = {}
    for start in range(0, len(wanted), _CHUNK):
        # Locks in citizen-id order so two batches sharing citizens cannot deadlock.
        stmt = (
            select(Carry)
            .where(Carry.citizen_id.in_(wanted[start : start + _CHUNK]))
            .order_by(Carry.citizen_id)
            .execution_options(populate_existing=True)
        )
        out.update({c.citizen_id: c for c in session.scalars(for_update(session, stmt))})
    return out


def _lock_carry_rows(session: Session, citizen_ids: Sequence[int]) -> dict[int, list[int]]:
    """The batch's carries as [carry_mg, total_mg, total_points] (zeros when new). Core rows, not
    ORM objects: a batch touches hundreds of carries and writes them back in one executemany.

    PostgreSQL: missing rows are created at zero first, then all are locked in citizen-id order,
    so two batches sharing citizens queue rather than deadlock. SQLite's writers are serialised:
    a plain read, and `_write_carries` creates what is new as it writes."""
    wanted = sorted(set(citizen_ids))
    if not serialised_writers(session):
        execute_many(
            session,
            insert_ignore(session, _CARRY, ["citizen_id"]),
            [{"citizen_id": c, "carry_mg": 0, "total_mg": 0, "total_points": 0} for c in wanted],
        )
    out: dict[int, list[int]] = {c: [0, 0, 0] for c in wanted}
    stmt = _carries_stmt(postgres(session))
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for c, carry_mg, total_mg, total_points in fetch_all(session, stmt, {"citizens": chunk}):
            out[c] = [carry_mg, total_mg, total_points]
    return out


@lru_cache(maxsize=2)
def _carries_stmt(on_postgres: bool) -> Select[Any]:
    c = _CARRY.c
    stmt = (
        select(c.citizen_id, c.carry_mg, c.total_mg, c.total_points)
        .where(in_list(on_postgres, c.citizen_id, "citizens"))
        .order_by(c.citizen_id)
    )
    return stmt.with_for_update() if on_postgres else stmt


def _write_carries(session: Session, carries: dict[int, list[int]]) -> None:
    if not carries:
        return
    execute_many(
        session,
        upsert_set(session, _CARRY, ["citizen_id"], ["carry_mg", "total_mg", "total_points"]),
        [
            {"citizen_id": c, "carry_mg": v[0], "total_mg": v[1], "total_points": v[2]}
            for c, v in sorted(carries.items())
        ],
    )
    # Carry objects an earlier revocation loaded in this session would now be stale.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Carry) and obj.citizen_id in carries:
            session.expire(obj)


def _existing_awards(session: Session, keys: Iterable[str]) -> dict[str, AwardRow]:
    unique = sorted(set(keys))
    out: dict[str, AwardRow] = {}
    for start in range(0, len(unique), _CHUNK):
        rows = session.scalars(
            select(AwardRow).where(
                in_values(session, AwardRow.idempotency_key, unique[start : start + _CHUNK])
            )
        )
        out.update({r.idempotency_key: r for r in rows})
    return out


def award_points(session: Session, awards: Sequence[Award]) -> list[int]:
    """Convert reductions into points; returns the points of each award, in order.

    One batch = one carry lock per citizen, one lot upsert, ONE POINT transfer (a posting per citizen),
    one bulk insert of award rows (each with its own points, so a source can be revoked exactly). Replaying an award's
    idempotency key returns the points it gave the first time; the same key with another body is 409.
    """
    return award_points_with(session, awards)[1]


def award_points_with(
    session: Session,
    awards: Sequence[Award],
    companion: Companion | None = None,
    *,
    new_keys: bool = False,
) -> tuple[int | None, list[int]]:
    """`award_points`, with the companion's postings in the same transfer: (transfer id, points).

    The transfer id is None when nothing moved (no points, no companion postings). `new_keys`: the
    caller vouches that no award has these idempotency keys yet (they name rows its transaction
    created), so they are not looked up; the unique index still refuses one that exists."""
    if not awards:
        return _companion_transfer(session, companion), []
    for award in awards:
        _validate(award)
    hashes = [_award_hash(a) for a in awards]
    carries = _lock_carry_rows(session, [a.citizen_id for a in awards])
    existing = {} if new_keys else _existing_awards(session, (a.idempotency_key for a in awards))
    all_rules = rules(session)

    # Budgets: lock only capped campaigns (see models.py), and sum what they have issued.
    remaining_budget: dict[str, int | None] = {}
    for code in sorted({a.campaign for a in awards}):
        stmt = select(Campaign).where(Campaign.code == code)
        campaign = session.scalars(for_update(session, stmt)).one_or_none()
        if campaign is None or campaign.budget_points is None:
            remaining_budget[code] = None
        else:
            remaining_budget[code] = max(0, campaign.budget_points - _issued(session, code))

    zone = get_settings().zone
    results: list[int | None] = [None] * len(awards)
    fresh: list[
        tuple[int, int, int, PointRule, date]
    ] = []  # (index, points, capped, rule, earned_on)
    seen: dict[str, int] = {}
    changed: set[int] = set()
    for i, (award, digest) in enumerate(zip(awards, hashes, strict=True)):
        key = award.idempotency_key
        if key in existing:
            if existing[key].request_hash != digest:
                raise IdempotencyConflict(key)
            results[i] = existing[key].points
            continue
        if key in seen:
            if hashes[seen[key]] != digest:
                raise IdempotencyConflict(key)
            continue
        seen[key] = i
        rule = _pick(all_rules, award.earned_at)
        carry = carries[award.citizen_id]  # [carry_mg, total_mg, total_points]
        total = carry[0] + award.reduction_mg
        points = total // rule.mg_per_point if total > 0 else 0
        budget = remaining_budget[award.campaign]
        granted = points if budget is None else min(points, budget)
        if budget is not None:
            remaining_budget[award.campaign] = budget - granted
        # Denied (capped) points are forfeited: the carry keeps only what is below one point.
        carry[0] = total - points * rule.mg_per_point if total > 0 else total
        carry[1] += award.reduction_mg
        carry[2] += granted
        changed.add(award.citizen_id)
        fresh.append((i, granted, points - granted, rule, local_day(award.earned_at, zone)))
        results[i] = granted

    if fresh:
        transfer_id = _record_awards(session, awards, hashes, fresh, companion)
        _write_carries(session, {c: carries[c] for c in changed})
    else:
        transfer_id = _companion_transfer(session, companion)
    for i, award in enumerate(awards):
        if results[i] is None:
            results[i] = results[seen[award.idempotency_key]]
    return transfer_id, [r or 0 for r in results]


@lru_cache(maxsize=2)
def _lot_ids_stmt(on_postgres: bool) -> Select[Any]:
    c = _LOT.c
    return select(c.id, c.citizen_id, c.earned_on, c.expires_on).where(
        in_list(on_postgres, c.citizen_id, "citizens"), in_list(on_postgres, c.earned_on, "days")
    )


def _companion_transfer(session: Session, companion: Companion | None) -> int | None:
    if companion is None or not companion.postings:
        return None
    return ledger_service.transfer(
        session,
        idempotency_key=companion.idempotency_key,
        kind=companion.kind,
        postings=companion.postings,
        metadata=companion.metadata,
    ).id


def _record_awards(
    session: Session,
    awards: Sequence[Award],
    hashes: Sequence[str],
    fresh: Sequence[tuple[int, int, int, PointRule, date]],
    companion: Companion | None,
) -> int | None:
    # Lots: one row per (citizen, day earned, expiry), grown by an upsert.
    lot_add: dict[tuple[int, date, date], int] = defaultdict(int)
    for i, points, _capped, rule, earned_on in fresh:
        if points:
            lot_add[(awards[i].citizen_id, earned_on, rule.expires_on(earned_on))] += points
    lot_ids: dict[tuple[int, date, date], int] = {}
    if lot_add:
        now = utcnow()
        execute_many(
            session,
            upsert_add(
                session,
                Lot.__table__,  # type: ignore[arg-type]
                ["citizen_id", "earned_on", "expires_on"],
                ["points", "remaining"],
            ),
            [
                {
                    "citizen_id": c,
                    "earned_on": e,
                    "expires_on": x,
                    "points": n,
                    "remaining": n,
                    "expired": 0,
                    "created_at": now,
                }
                for (c, e, x), n in sorted(lot_add.items())
            ],
        )
        citizens = sorted({k[0] for k in lot_add})
        days = sorted({k[1] for k in lot_add})
        stmt = _lot_ids_stmt(postgres(session))
        for start in range(0, len(citizens), _CHUNK):
            # Core columns and one fetch: hundreds of rows, no ORM loading.
            chunk = {"citizens": citizens[start : start + _CHUNK], "days": days}
            for lot_id, citizen_id, earned_on, expires_on in fetch_all(session, stmt, chunk):
                lot_ids[(citizen_id, earned_on, expires_on)] = lot_id

    # Ledger: ONE transfer for the whole batch, issuance -> one posting per citizen (the sum of that
    # citizen's awards). Each award row below keeps its own points and this transfer's id, so
    # `revoke_points(source=...)` takes back exactly what one source earned, as a new compensating
    # transfer; the batch transfer itself is never edited. One transfer (and so one trust-log leaf)
    # per batch instead of per award is what keeps ingestion batch-shaped.
    per_citizen: dict[int, int] = defaultdict(int)
    for i, points, *_ in fresh:
        if points:
            per_citizen[awards[i].citizen_id] += points
    postings: list[tuple[int, int]] = []
    if per_citizen:
        issuance = ledger_service.platform_account_id(session, POINT, ISSUANCE)
        accounts = ledger_service.open_accounts(
            session, owner_type=CITIZEN, owner_ids=per_citizen, asset=POINT
        )
        postings = [(issuance, -sum(per_citizen.values()))]
        postings += [(accounts[str(c)], n) for c, n in sorted(per_citizen.items())]
    first = awards[fresh[0][0]]
    meta: Mapping[str, Any] = {"awards": len(fresh), "first_source": first.source}
    if companion is not None:
        key, kind = companion.idempotency_key, companion.kind
        postings = [*companion.postings, *postings]
        meta = {**companion.metadata, **meta}
    else:
        # The awards' keys are new (checked above), so a digest of them names this batch: a retried
        # transaction recomputes the same key, a different batch cannot.
        digest = hashlib.sha256("\n".join(awards[i].idempotency_key for i, *_ in fresh).encode())
        key, kind = f"points.award:{digest.hexdigest()[:40]}", "points.award"
    transfer_id = None
    if postings:
        transfer_id = ledger_service.transfer(
            session, idempotency_key=key, kind=kind, postings=postings, metadata=meta
        ).id

    now = utcnow()
    execute_many(
        session,
        _INSERT_AWARD,
        [
            {
                "idempotency_key": awards[i].idempotency_key,
                "request_hash": hashes[i],
                "citizen_id": awards[i].citizen_id,
                "source": awards[i].source,
                "campaign": awards[i].campaign,
                "reduction_mg": awards[i].reduction_mg,
                "mg_per_point": rule.mg_per_point,
                "points": points,
                "capped_points": capped,
                "earned_at": awards[i].earned_at,
                "lot_id": lot_ids.get(
                    (awards[i].citizen_id, earned_on, rule.expires_on(earned_on))
                ),
                "transfer_id": transfer_id if points else None,
                "revoked": False,
                "revoked_points": 0,
                "revoke_transfer_id": None,
                "created_at": now,
            }
            for i, points, capped, rule, earned_on in fresh
        ],
    )
    return transfer_id


# --- revocation ------------------------------------------------------------------------------------


def revoke_points(session: Session, *, source: str, idempotency_key: str) -> int:
    """Take back what a source's awards gave; returns the points taken back (0 on a replay).

    Points the citizen has already spent cannot be taken back: the revocation takes what is still
    available (from the award's own lot first, then oldest-expiring) and the carry absorbs the
    reduction, so later reductions make up the difference before earning new points.
    """
    if not idempotency_key:
        raise InvalidInput("idempotency_key is required", field="idempotency_key")
    rows = session.scalars(
        select(AwardRow).where(AwardRow.source == source).order_by(AwardRow.id)
    ).all()
    if not rows:
        raise NotFound(f"no points were awarded for {source!r}", code="award_not_found")
    pending = [r for r in rows if not r.revoked]
    if not pending:
        return 0
    carries = _lock_carries(session, [r.citizen_id for r in pending])
    taken_total = 0
    issuance = ledger_service.platform_account(session, POINT, ISSUANCE)
    for row in pending:
        taken = 0
        if row.points:
            account = ledger_service.open_account(
                session, owner_type=CITIZEN, owner_id=row.citizen_id, asset=POINT
            )
            available = ledger_service.balance(session, account.id).available
            taken = min(row.points, available)
            if taken:
                _take_from_lots(session, row.citizen_id, taken, prefer=row.lot_id)
                record = ledger_service.transfer(
                    session,
                    idempotency_key=f"points.revoke:{idempotency_key}:{row.id}",
                    kind="points.revoke",
                    postings=[(account.id, -taken), (issuance.id, taken)],
                    metadata={"source": source, "award_id": row.id},
                )
                row.revoke_transfer_id = record.id
        carry = carries[row.citizen_id]
        carry.carry_mg = carry.carry_mg - row.reduction_mg + taken * row.mg_per_point
        carry.total_mg -= row.reduction_mg
        carry.total_points -= taken
        row.revoked = True
        row.revoked_points = taken
        taken_total += taken
    session.flush()
    return taken_total


def _take_from_lots(session: Session, citizen_id: int, points: int, *, prefer: int | None) -> None:
    lots = _spendable_lots(session, citizen_id)
    lots.sort(key=lambda lot: (lot.id != prefer, lot.expires_on, lot.earned_on, lot.id))
    left = points
    for lot in lots:
        if not left:
            break
        n = min(left, lot.remaining)
        lot.remaining -= n
        lot.points -= n
        left -= n
    if left:
        raise InsufficientPoints("the lots do not hold the points to revoke", field="points")
    session.flush()


def _spendable_lots(session: Session, citizen_id: int) -> list[Lot]:
    # Locked in id order (as expiry does), then spent oldest-expiring first.
    stmt = (
        select(Lot)
        .where(Lot.citizen_id == citizen_id, Lot.remaining > 0)
        .order_by(Lot.id)
        .execution_options(populate_existing=True)
    )
    lots = list(session.scalars(for_update(session, stmt)))
    return sorted(lots, key=lambda lot: (lot.expires_on, lot.earned_on, lot.id))


# --- spending (the mall) ---------------------------------------------------------------------------


def point_account_id(session: Session, citizen_id: int) -> int:
    return ledger_service.open_account(
        session, owner_type=CITIZEN, owner_id=citizen_id, asset=POINT
    ).id


def consume_points(
    session: Session, citizen_id: int, points: int, *, ref: str, today: date | None = None
) -> list[tuple[int, int]]:
    """Take `points` from the citizen's lots, oldest-expiring first; returns (lot id, points) used.

    The caller moves the points in the ledger (a hold on the citizen's POINT account taken *before*
    this call, so concurrent spenders of one citizen queue on that account's row lock). Lots past
    their expiry date are not spent even if the expiry job has not run yet.
    """
    if type(points) is not int or points <= 0:
        raise InvalidInput("points must be a positive integer", field="points")
    today = today or local_day(utcnow())
    left = points
    used: list[tuple[int, int]] = []
    for lot in _spendable_lots(session, citizen_id):
        if not left:
            break
        if lot.expires_on < today:
            continue
        n = min(left, lot.remaining)
        lot.remaining -= n
        left -= n
        used.append((lot.id, n))
    if left:
        raise InsufficientPoints(
            f"citizen {citizen_id} has fewer than {points} unexpired points", field="points"
        )
    now = utcnow()
    session.add_all(
        LotUse(lot_id=lot_id, citizen_id=citizen_id, ref=ref, points=n, created_at=now)
        for lot_id, n in used
    )
    session.flush()
    return used


def restore_points(session: Session, *, ref: str) -> int:
    """Give back to their lots the points that `consume_points(ref=...)` took (once)."""
    uses = session.scalars(
        for_update(
            session,
            select(LotUse).where(LotUse.ref == ref, LotUse.restored.is_(False)).order_by(LotUse.id),
        )
    ).all()
    total = 0
    for use in uses:
        session.execute(
            update(Lot).where(Lot.id == use.lot_id).values(remaining=Lot.remaining + use.points)
        )
        use.restored = True
        total += use.points
    session.flush()
    return total


# --- reading ---------------------------------------------------------------------------------------

# Levels by lifetime points earned (before spending), like the "成长值" of city platforms.
LEVEL_THRESHOLDS = (0, 100, 500, 2_000, 10_000)


def level(session: Session, citizen_id: int) -> int:
    """1 to 5, from lifetime points awarded (spending does not lower a level)."""
    carry = session.get(Carry, citizen_id)
    earned = carry.total_points if carry else 0
    return sum(1 for threshold in LEVEL_THRESHOLDS if earned >= threshold)


def points_balance(session: Session, citizen_id: int) -> int:
    """Spendable points: the ledger balance less points held for pending orders."""
    account = ledger_service.open_account(
        session, owner_type=CITIZEN, owner_id=citizen_id, asset=POINT
    )
    return ledger_service.balance(session, account.id).available


def points_summary(session: Session, citizen_id: int) -> PointsSummary:
    account = ledger_service.open_account(
        session, owner_type=CITIZEN, owner_id=citizen_id, asset=POINT
    )
    bal = ledger_service.balance(session, account.id)
    lots = session.scalars(
        select(Lot)
        .where(Lot.citizen_id == citizen_id, Lot.points + Lot.expired > 0)
        .order_by(Lot.expires_on, Lot.earned_on, Lot.id)
    ).all()
    carry = session.get(Carry, citizen_id)
    rule = rule_at(session)
    expiring: dict[date, int] = defaultdict(int)
    for lot in lots:
        if lot.remaining:
            expiring[lot.expires_on] += lot.remaining
    return PointsSummary(
        citizen_id=citizen_id,
        balance=bal.balance,
        held=bal.held,
        available=bal.available,
        carry_mg=carry.carry_mg if carry else 0,
        mg_per_point=rule.mg_per_point,
        fen_per_100_points=rule.fen_per_100_points,
        value_fen=bal.available * rule.fen_per_100_points // 100,
        lots=[
            LotView(lot.id, lot.earned_on, lot.expires_on, lot.points, lot.remaining, lot.expired)
            for lot in lots
        ],
        expiring=sorted(expiring.items()),
    )


# --- expiry ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiryResult:
    lots: int
    points: int


def expirable_lots(session: Session, *, as_of: date) -> list[int]:
    return list(
        session.scalars(
            select(Lot.id)
            .where(Lot.expires_on < as_of, Lot.remaining > 0)
            .order_by(Lot.citizen_id, Lot.id)
        )
    )


def expire_lots(session: Session, lot_ids: Sequence[int], *, as_of: date) -> ExpiryResult:
    """Expire what remains in these lots (those still past expiry); safe to run again."""
    sink = ledger_service.platform_account(session, POINT, EXPIRY)
    stmt = (
        select(Lot)
        .where(Lot.id.in_(sorted(lot_ids)), Lot.expires_on < as_of, Lot.remaining > 0)
        .order_by(Lot.id)
        .execution_options(populate_existing=True)
    )
    lots = list(session.scalars(for_update(session, stmt)))
    if not lots:
        return ExpiryResult(0, 0)
    accounts = ledger_service.open_accounts(
        session, owner_type=CITIZEN, owner_ids=[lot.citizen_id for lot in lots], asset=POINT
    )
    requests = []
    total = 0
    for lot in lots:
        amount = lot.remaining
        lot.expired += amount
        lot.remaining = 0
        total += amount
        requests.append(
            ledger_service.TransferRequest(
                # Keyed by the lot's expired total: a rerun finds nothing left, a lot refilled by a
                # cancelled order after expiry expires again under a new key.
                idempotency_key=f"points.expire:{lot.id}:{lot.expired}",
                kind="points.expire",
                postings=((accounts[str(lot.citizen_id)], -amount), (sink.id, amount)),
                metadata={"lot_id": lot.id, "expires_on": lot.expires_on.isoformat()},
            )
        )
    session.flush()
    ledger_service.transfer_many(session, requests)
    return ExpiryResult(len(lots), total)


def expire_points(
    session: Session,
    *,
    as_of: date,
    batch: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> ExpiryResult:
    ids = expirable_lots(session, as_of=as_of)
    lots = points = 0
    for start in range(0, len(ids), batch):
        result = expire_lots(session, ids[start : start + batch], as_of=as_of)
        lots += result.lots
        points += result.points
        if progress is not None:
            progress(min(start + batch, len(ids)), len(ids))
    return ExpiryResult(lots, points)


# --- economics -------------------------------------------------------------------------------------


def outstanding_points(session: Session) -> int:
    """Points held by citizens now (the platform's liability): sum of unspent lot points."""
    return int(session.scalar(select(func.coalesce(func.sum(Lot.remaining), 0))) or 0)


def expiry_schedule(session: Session, *, after: date | None = None) -> list[tuple[date, int]]:
    stmt = select(Lot.expires_on, func.sum(Lot.remaining)).where(Lot.remaining > 0)
    if after is not None:
        stmt = stmt.where(Lot.expires_on >= after)
    rows = session.execute(stmt.group_by(Lot.expires_on).order_by(Lot.expires_on))
    return [(d, int(n)) for d, n in rows]


def flows(session: Session, *, since: datetime | None = None) -> dict[str, int]:
    """Points issued (net of revocations), expired and outstanding, for the operator's reports."""
    stmt = select(
        func.coalesce(func.sum(AwardRow.points), 0),
        func.coalesce(func.sum(AwardRow.revoked_points), 0),
    )
    if since is not None:
        stmt = stmt.where(AwardRow.created_at >= since)
    issued, revoked = session.execute(stmt).one()
    expired = session.scalar(select(func.coalesce(func.sum(Lot.expired), 0)))
    return {
        "issued": int(issued) - int(revoked),
        "revoked": int(revoked),
        "expired": int(expired or 0),
        "outstanding": outstanding_points(session),
    }


def issued_by_day(session: Session, *, first: date, last: date) -> dict[date, int]:
    """Points issued per platform-time-zone earning day (net of revocations), from the dated lots."""
    rows = session.execute(
        select(Lot.earned_on, func.sum(Lot.points))
        .where(Lot.earned_on >= first, Lot.earned_on <= last)
        .group_by(Lot.earned_on)
    )
    return {day: int(points) for day, points in rows}


def day_bounds(day: date) -> tuple[datetime, datetime]:
    zone = get_settings().zone
    start = datetime.combine(day, time(0), zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)
