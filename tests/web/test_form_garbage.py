"""Every HTML form endpoint, posted garbage by a logged-in operator, citizen or nobody, on SQLite
and PostgreSQL: the answer is a page (a redirect, the form again with its errors, or an error page),
never a 5xx. The OpenAPI sweep (tests/kit/test_no_500.py) cannot reach these: the pages are not in
the schema. Values include text PostgreSQL refuses (NUL), numbers past 64 bits and odd dates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tanhui.web import security
from tests.fixtures import identity as identity_fx
from tests.web.conftest import World, csrf, login_as, staff

# The pages' POST routes, with small ids in their paths (some exist in `world`, most do not).
ROUTES = (
    "/me/apps/{n}/revoke",
    "/authorize",
    "/me/privacy/delete",
    "/me/privacy/delete/confirm",
    "/partners/apply",
    "/console/partners/applications/{n}",
    "/login/code",
    "/login",
    "/console/login",
    "/console/review",
    "/console/review/{n}",
    "/console/methodologies/upload",
    "/console/methodologies/publish",
    "/console/partners",
    "/console/partners/{n}/rotate",
    "/console/partners/keys/{text}/revoke",
    "/console/mall/rewards",
    "/console/mall/write-off",
    "/console/mall/rewards/{n}/active",
    "/console/mall/rewards/{n}",
    "/console/mall/orders/{n}/cancel",
    "/console/ledger",
    "/console/projects/new",
    "/console/projects/{n}/action",
    "/console/projects/{n}/documents",
    "/console/projects/{n}/reports",
    "/console/projects/{n}/reports/{n}/{text}",
    "/console/registry/{text}",
    "/console/rules",
    "/console/staff",
    "/console/staff/{n}/active",
    "/console/staff/{n}/password",
    "/console/staff/{n}/roles",
    "/console/password",
    "/console/citizens",
    "/mall/{n}/redeem",
    "/logout",
)


def _field_names() -> tuple[str, ...]:
    """Every field name the pages' forms use: in the templates and as read by the views."""
    web = Path(security.__file__).parent
    found = set()
    for template in (web / "templates").rglob("*.html"):
        found.update(re.findall(r'name="(\w+)"', template.read_text()))
    for view in (web / "views").glob("*.py"):
        found.update(re.findall(r'(?:data|form|ask|posted)(?:\.get\(|\[)"(\w+)"', view.read_text()))
    return tuple(sorted(found))


FIELDS = _field_names()

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)  # NUL included
values = st.one_of(
    text,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(
        [
            "1",
            "0",
            "-1",
            "2026-11-30",
            "9999-12-31",
            "0000-00-00",
            "1e400",
            "NaN",
            "metro",
            "approve",
            "reject",
            "on",
            "true",
            "13800138000",
            "/console",
            "//evil.example",
            "",
        ]
    ),
)
paths = st.tuples(
    st.sampled_from(ROUTES),
    st.one_of(st.integers(-1, 3), st.integers(2**63, 2**70)).map(str),
    st.one_of(text.filter(str.strip).map(lambda t: quote(t, safe="")), st.just("approve")),
).map(lambda p: p[0].replace("{n}", p[1]).replace("{text}", p[2]))


def test_garbage_form_posts_never_fail_the_server(client: Any, session: Session, world: World):
    operator = staff(session, "operator_admin", "reviewer", "merchant", "verifier")
    person = identity_fx.citizen(session)
    session.flush()
    tokens = {"operator": operator.token, "citizen": person.token, "nobody": None}
    codes: set[int] = set()

    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        paths,
        st.dictionaries(st.sampled_from(FIELDS), values, max_size=6),
        st.sampled_from(sorted(tokens)),
        st.booleans(),
    )
    def post(path: str, form: dict[str, str], who: str, with_csrf: bool) -> None:
        client.cookies.clear()
        token = tokens[who]
        if token is not None:
            login_as(client, token)
        if with_csrf:
            form = {**form, security.CSRF_FIELD: csrf(client)}
        # Each example in its own savepoint: a logout, a deletion or a password change must not
        # turn every later example away.
        example = session.connection().begin_nested()
        try:
            response = client.post(path, data=form, follow_redirects=False)
        finally:
            example.rollback()
        codes.add(response.status_code)
        assert response.status_code < 500, (path, who, form, response.text[:300])

    post()
    assert codes & {200, 303} and codes & {400, 403, 404, 409, 422}  # both kinds were reached
