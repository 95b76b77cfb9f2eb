"""Project path pages: each role sees its buttons, a PV project goes from draft to issued credits
through the forms, errors land beside their field, and nothing answers 500."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tanhui.projects import service as projects_service
from tanhui.web import security
from tests.fixtures.projects import PV_METHODOLOGY, Cast, cast, registered_project
from tests.web.conftest import csrf, login_as


@pytest.fixture
def c(session: Session) -> Cast:
    return cast(session)


def _post(client: Any, path: str, data: dict[str, str], **kw: Any) -> Any:
    return client.post(
        path, data={security.CSRF_FIELD: csrf(client), **data}, follow_redirects=False, **kw
    )


def _key(page: str) -> str:
    found = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert found, page[:3000]
    return found.group(1)


NEW = {
    "name": "张江屋顶光伏",
    "project_type": "rooftop_pv",
    "methodology": f"{PV_METHODOLOGY[0]}@{PV_METHODOLOGY[1]}",
    "location": "张江路 88 号",
    "district": "上海市浦东新区",
    "capacity_kw": "800",
    "crediting_start": "2025-01-01",
    "crediting_end": "2034-12-31",
    "description": "厂房屋顶",
}


class TestJourney:
    def test_owner_verifier_operator_take_a_pv_project_to_issued_credits(self, client, c):
        # owner: new project form lists project methodologies only
        login_as(client, c.owner.token)
        form = client.get("/console/projects/new")
        assert form.status_code == 200
        assert PV_METHODOLOGY[0] in form.text
        assert "wuhan-metro" not in form.text
        done = _post(client, "/console/projects/new", NEW)
        assert done.status_code == 303, done.text[:2000]
        path = done.headers["location"].split("?")[0]
        pid = int(path.rsplit("/", 1)[1])
        page = client.get(path).text
        assert 'id="do-submit"' in page
        assert 'id="do-validate"' not in page
        assert "800 kW" in page
        assert _post(client, f"{path}/action", {"action": "submit"}).status_code == 303

        # operator: assigns the verifier from a list, and cannot validate
        login_as(client, c.operator.token)
        page = client.get(path).text
        assert 'name="verifier_org_id"' in page
        assert 'id="do-validate"' not in page
        assert (
            _post(
                client,
                f"{path}/action",
                {"action": "assign_verifier", "verifier_org_id": str(c.verifier_org)},
            ).status_code
            == 303
        )

        # verifier validates; operator registers
        login_as(client, c.verifier.token)
        assert 'id="do-validate"' in client.get(path).text
        assert _post(client, f"{path}/action", {"action": "validate"}).status_code == 303
        login_as(client, c.operator.token)
        assert _post(client, f"{path}/action", {"action": "register"}).status_code == 303
        page = client.get(path).text
        assert 'id="history"' in page
        assert page.count("<tr><td data-label") >= 4  # create, submit, assign, validate, register

        # owner files a report with the CSV of readings
        login_as(client, c.owner.token)
        page = client.get(path).text
        readings = "date,meter_id,kwh\n2025-01-01,M1,1200000\n2025-01-02,M1,1300000.5\n"
        done = _post(
            client,
            f"{path}/reports",
            {
                "period_start": "2025-01-01",
                "period_end": "2025-01-31",
                "idempotency_key": _key(page),
            },
            files={"readings": ("r.csv", readings.encode(), "text/csv")},
        )
        assert done.status_code == 303, done.text[:3000]
        report_path = done.headers["location"].split("?")[0]
        report = client.get(report_path).text
        assert 'id="steps"' in report and 'id="factors"' in report
        assert "2500000.5" in report  # the readings' total became the kWh input
        assert "verify-form" not in report  # not the owner's decision

        # verifier corrects the figure with a comment: original and corrected both shown
        login_as(client, c.verifier.token)
        missing = _post(client, f"{report_path}/verify", {"corrected_kwh": "2400000"})
        assert missing.status_code == 422 and 'id="e-comment"' in missing.text
        done = _post(
            client,
            f"{report_path}/verify",
            {"corrected_kwh": "2400000", "comment": "M1 clock drift"},
        )
        assert done.status_code == 303
        report = client.get(report_path).text
        assert "<s>" in report and "M1 clock drift" in report and 'id="corrected-steps"' in report

        # operator approves with the form's idempotency key: credits issued with serials
        login_as(client, c.operator.token)
        report = client.get(report_path).text
        key = _key(report)
        done = _post(client, f"{report_path}/approve", {"idempotency_key": key})
        assert done.status_code == 303, done.text[:2000]
        again = _post(client, f"{report_path}/approve", {"idempotency_key": key})
        assert again.status_code == 303  # approving again answers with the same batch
        report = client.get(report_path).text
        assert 'id="batch"' in report
        assert re.search(rf"TH-2025-{pid:06d}-001-000001-\d{{6}}", report)
        issued = int(re.search(r'id="issued-credits">([\d,]+)<', report).group(1).replace(",", ""))
        assert issued == 1008  # 2,400,000 kWh x 0.42 kg = 1,008 t

        # the public registry shows it
        public = client.get(f"/registry/projects/{pid}").text
        assert f"TH-2025-{pid:06d}-001" in public


class TestErrors:
    def test_new_project_errors_beside_fields(self, client, c):
        login_as(client, c.owner.token)
        for field, value in [
            ("crediting_start", "soon"),
            ("capacity_kw", "lots"),
            ("capacity_kw", "-3"),
            ("name", ""),
            ("name", "x" * 201),
            ("methodology", "no-such@9"),
            ("project_type", "volcano"),
        ]:
            page = _post(client, "/console/projects/new", {**NEW, field: value})
            assert page.status_code == 422, (field, value, page.status_code)
            assert f'id="e-{field}"' in page.text, (field, value)
        page = _post(client, "/console/projects/new", {**NEW, "crediting_end": "2024-01-01"})
        assert page.status_code == 422 and 'id="e-crediting_end"' in page.text

    def test_a_length_limit_is_said_in_the_pages_language_with_its_number(self, client, c):
        login_as(client, c.owner.token)
        chinese = _post(client, "/console/projects/new", {**NEW, "location": "路" * 301})
        assert chinese.status_code == 422 and 'id="e-location"' in chinese.text
        assert "最多 300 个字符" in chinese.text
        assert "at most" not in chinese.text  # no English detail appended to a Chinese page
        english = _post(client, "/console/projects/new?lang=en", {**NEW, "name": "x" * 201})
        assert english.status_code == 422 and "at most 200 characters" in english.text

    def test_report_errors_by_line_beside_the_upload(self, client, session, c):
        project = registered_project(session, c)
        login_as(client, c.owner.token)
        path = f"/console/projects/{project.id}"
        bad = "date,meter_id,kwh\n2025-01-01,M1,abc\n2025-13-01,M1,5\n"
        page = _post(
            client,
            f"{path}/reports",
            {"period_start": "2025-01-01", "period_end": "2025-01-31"},
            files={"readings": ("r.csv", bad.encode(), "text/csv")},
        )
        assert page.status_code == 422
        assert 'id="e-readings"' in page.text and 'id="csv-errors"' in page.text
        assert page.text.count("<tr><td>") >= 2
        page = _post(
            client,
            f"{path}/reports",
            {"period_start": "2025-01-01", "period_end": "2025-01-31", "kwh": "many"},
        )
        assert page.status_code == 422 and 'id="e-kwh"' in page.text
        page = _post(
            client,
            f"{path}/reports",
            {"period_start": "2020-01-01", "period_end": "2020-01-31", "kwh": "5"},
        )
        assert page.status_code == 422 and 'id="e-period_start"' in page.text

    def test_rejection_needs_a_reason_beside_the_field(self, client, session, c):
        project = projects_service.create_project(
            session,
            c.owner.principal,
            name="p",
            project_type="rooftop_pv",
            methodology_id=PV_METHODOLOGY[0],
            methodology_version=PV_METHODOLOGY[1],
            location="l",
            district="d",
            crediting_start=date(2025, 1, 1),
            crediting_end=date(2030, 1, 1),
        )
        projects_service.submit(session, c.owner.principal, project.id)
        login_as(client, c.operator.token)
        page = _post(client, f"/console/projects/{project.id}/action", {"action": "reject"})
        assert page.status_code == 422 and 'id="e-reason"' in page.text
        page = _post(
            client,
            f"/console/projects/{project.id}/action",
            {"action": "reject", "reason": "因" * 501},
        )
        assert page.status_code == 422 and "最多 500 个字符" in page.text
        page = _post(client, f"/console/projects/{project.id}/action", {"action": "register"})
        assert page.status_code == 409  # a submitted project is not registered: said on the page

    def test_other_organisations_see_nothing(self, client, session, c):
        project = registered_project(session, c)
        login_as(client, c.other_owner.token)
        assert client.get(f"/console/projects/{project.id}").status_code == 404
        page = _post(client, f"/console/projects/{project.id}/action", {"action": "submit"})
        assert page.status_code == 404
        login_as(client, c.buyer.token)
        assert client.get("/console/projects").status_code == 403

    @pytest.mark.parametrize("bad", ["abc", "-1", "99999999999999999999", "1%00"])
    def test_bad_ids_never_500(self, client, session, c, bad):
        project = registered_project(session, c)
        login_as(client, c.operator.token)
        for path in (
            f"/console/projects/{bad}",
            f"/console/projects/{project.id}/reports/{bad}",
        ):
            assert client.get(path).status_code in (404, 422), path
        for path in (
            f"/console/projects/{bad}/action",
            f"/console/projects/{project.id}/reports/{bad}/approve",
            f"/console/projects/{project.id}/reports/1/{bad}",
        ):
            assert _post(client, path, {"action": "submit"}).status_code in (404, 422), path

    def test_forms_need_csrf(self, client, session, c):
        project = registered_project(session, c)
        login_as(client, c.owner.token)
        client.get("/console/projects")
        page = client.post(
            f"/console/projects/{project.id}/action",
            data={"action": "submit"},
            follow_redirects=False,
        )
        assert page.status_code == 403

    @pytest.mark.parametrize("lang", ["zh", "en"])
    def test_pages_render_in_both_languages(self, client, session, c, lang):
        project = registered_project(session, c)
        for who in (c.owner, c.verifier, c.operator):
            login_as(client, who.token)
            for path in ("/console/projects", f"/console/projects/{project.id}"):
                page = client.get(f"{path}?lang={lang}")
                assert page.status_code == 200, (path, page.text[:1000])
                assert ('lang="zh-CN"' if lang == "zh" else 'lang="en"') in page.text
        login_as(client, c.owner.token)
        assert client.get(f"/console/projects/new?lang={lang}").status_code == 200

    def test_status_filter(self, client, session, c):
        project = registered_project(session, c)
        login_as(client, c.operator.token)
        page = client.get("/console/projects?status=registered").text
        assert '<option value="registered" selected>' in page
        assert f'href="/console/projects/{project.id}"' in page
        page = client.get("/console/projects?status=draft").text
        assert f'href="/console/projects/{project.id}"' not in page
        assert client.get("/console/projects?status=%00nonsense").status_code == 200
