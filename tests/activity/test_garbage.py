"""Partners who send garbage: generated records, signed and posted through HTTP on SQLite and
PostgreSQL. Each batch is answered 200 with one outcome per record, or 422 as a whole (a malformed
body); never 5xx, and the ledger stays balanced. Fields mix valid values with text that PostgreSQL
refuses (NUL), out-of-range numbers and dates, wrong JSON types and deep or large evidence."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tanhui.ledger import service as ledger_service
from tests.fixtures import activity as fx

STATUSES = {"credited", "duplicate", "rejected", "review"}
NOW = datetime.now(UTC)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
garbage_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)  # NUL included


def _instant(days: float) -> str:
    return (NOW + timedelta(days=days)).isoformat()


times = st.one_of(
    st.floats(min_value=-40, max_value=2).map(_instant),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59+14:00",
            "2026-02-30T10:00:00Z",
            "2026-11-30T10:00:00",  # no offset
            "2026-11-30",
            "",
        ]
    ),
    garbage_text,
    json_leaf,
)
amounts = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1e999", "-0", "0", "NaN", "Infinity", "3.2", " 3.2", "3,2", "1" * 400]),
    st.floats(),
    st.integers(min_value=-(2**80), max_value=2**80),
    json_value,
)
quantities = st.one_of(
    st.dictionaries(
        st.sampled_from(["distance_km", "kwh", "passengers", "minutes"]) | garbage_text,
        amounts,
        max_size=4,
    ),
    json_value,
)


@st.composite
def garbage_record(draw: Any, puids: list[str]) -> Any:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(json_value)  # not even an object
    if kind <= 3:  # a sound record among the garbage, its trip anywhere in the last 40 days
        start = NOW - timedelta(days=draw(st.floats(0.1, 40)))
        return fx.record(
            draw(st.sampled_from(puids)),
            scenario=draw(st.sampled_from(fx.TRIPS)),
            start=start,
            minutes=draw(st.integers(1, 120)),
            quantities={"distance_km": str(draw(st.decimals("0.1", "80", places=2)))},
        )
    record: dict[str, Any] = {
        "external_id": draw(st.one_of(st.uuids().map(str), garbage_text, json_leaf)),
        "partner_user_id": draw(st.one_of(st.sampled_from(puids), garbage_text, json_leaf)),
        "scenario": draw(st.one_of(st.sampled_from(fx.SCENARIOS), garbage_text, json_leaf)),
        "started_at": draw(times),
        "ended_at": draw(times),
        "quantities": draw(quantities),
    }
    if draw(st.booleans()):
        record["evidence"] = draw(json_value)
    for key in draw(st.sets(st.sampled_from(sorted(record)), max_size=2)):
        del record[key]  # a missing field
    if draw(st.booleans()):
        record[draw(garbage_text)] = draw(json_value)  # an unknown one
    return record


def test_garbage_records_never_fail_the_server(client, session: Session) -> None:
    partner = fx.partner(session)
    puids = [fx.bind(session, partner)[0] for _ in range(3)]
    session.flush()
    seen: set[str] = set()  # statuses, and the codes of rejections

    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(garbage_record(puids), min_size=1, max_size=6))
    def send(records: list[Any]) -> None:
        body = json.dumps({"records": records}).encode()
        response = fx.push(client, partner, body)
        assert response.status_code in (200, 422), (response.status_code, response.text[:500])
        if response.status_code == 422:
            assert response.headers["content-type"].startswith("application/problem+json")
            return
        answers = response.json()["results"]
        assert len(answers) == len(records)
        assert {a["status"] for a in answers} <= STATUSES
        seen.update(a["status"] if a["status"] != "rejected" else a["code"] for a in answers)

    send()
    assert {"credited", "invalid_record"} <= seen  # both paths were taken
    assert ledger_service.check(session) == []


def test_garbage_ids_dates_and_reasons_never_fail_the_server(client, session: Session) -> None:
    partner = fx.partner(session)
    puid, _ = fx.bind(session, partner)
    session.flush()
    sent = fx.push(client, partner, [fx.record(puid, external_id="known")])
    codes: set[int] = set()
    assert sent.json()["results"][0]["status"] == "credited"

    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.one_of(st.just("known"), garbage_text), json_value, st.one_of(garbage_text, times))
    def send(external_id: str, reversal: Any, day: Any) -> None:
        path = f"/v1/partner/activities/{quote(external_id, safe='')}"
        status = fx.signed_get(client, partner, path)
        reversed_ = fx.signed_post(
            client, partner, path + "/reversal", json.dumps(reversal).encode()
        )
        day = day if isinstance(day, str) else json.dumps(day)
        report = fx.signed_get(client, partner, "/v1/partner/reconciliation", {"date": day})
        codes.update(r.status_code for r in (status, reversed_, report))
        for response in (status, reversed_, report):
            assert response.status_code < 500, (response.status_code, response.text[:500])
            if response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/problem+json")

    send()
    assert {200, 404, 422} <= codes  # the known record, unknown ids, and refused dates or bodies
    assert ledger_service.check(session) == []
