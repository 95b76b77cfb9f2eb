"""Property-based sweep: no operation in the OpenAPI document answers 500, whatever it is sent.

Schemathesis generates requests from /openapi.json (valid and invalid bodies, query strings, path
parameters); each is sent as an operator or as a citizen, so staff and citizen endpoints get past
authentication and their bodies are exercised too. On both databases: PostgreSQL refuses what
SQLite stores (NUL in text, integers past 64 bits). Partner endpoints answer 401 to these unsigned
requests; their bodies are fuzzed, signed, by tests/activity/test_garbage.py.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from sqlalchemy.orm import Session

from tests.fixtures.identity import citizen, staff

EXAMPLES_PER_OPERATION = 15


def test_no_operation_answers_500(app: FastAPI, session: Session) -> None:
    admin = staff(session, "operator_admin", "reviewer")
    person = citizen(session)
    session.flush()
    callers = st.sampled_from(
        [{"Authorization": f"Bearer {token}"} for token in (admin.token, person.token)]
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    calls: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), headers=callers)
        def run(case: Any, headers: dict[str, str]) -> None:
            # Each example in its own savepoint on the connection (a logout or an account deletion
            # must not leak into the next example and turn every later call away).
            example = session.connection().begin_nested()
            try:
                response = case.call(headers=headers)
            finally:
                example.rollback()
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")

        run()
    assert operations > 50
    assert len(calls) > operations * 2
    assert sum(200 <= code < 300 for code in calls) > operations // 2  # not all turned away
    assert failures == []
