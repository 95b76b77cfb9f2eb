"""Projects and registry demo: projects at every stage, monitoring reports, issued batches, transfers to
buyers, retirements for a marathon, a company and an eco-compensation case (以碳代偿), a cancellation,
and a batch aggregated from citizens' reductions when the activity demo left at least a tonne."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal
from tanhui.kit.errors import TanhuiError
from tanhui.methodology import service as methodology_service
from tanhui.projects import service as projects_service
from tanhui.registry import service as registry_service

if TYPE_CHECKING:
    from tanhui.demo import DemoContext

SH_PV = ("shanghai-distributed-pv", "1")
WH_PV = ("wuhan-distributed-pv", "1")
BUS = ("shenzhen-bus", "1")

NEW_ORGS = {
    # key: (name, kind, staff username, password, role)
    "sh_owner": (
        "上海张江绿能科技有限公司",
        "project_owner",
        "owner_sh",
        "owner-sh-demo-2026",
        "project_owner",
    ),
    "bus_owner": (
        "深圳巴士集团股份有限公司",
        "project_owner",
        "owner_bus",
        "owner-bus-demo-2026",
        "project_owner",
    ),
    "forest_owner": (
        "神农架林区林业发展有限公司",
        "project_owner",
        "owner_forest",
        "owner-forest-demo-2026",
        "project_owner",
    ),
    "marathon": (
        "上海马拉松赛事组委会",
        "buyer",
        "buyer_marathon",
        "buyer-marathon-demo-2026",
        "buyer",
    ),
    "company": ("上海云杉数据科技有限公司", "buyer", "buyer_corp", "buyer-corp-demo-2026", "buyer"),
    "eco": ("江西赣林木业有限公司", "buyer", "buyer_eco", "buyer-eco-demo-2026", "buyer"),
}


def _principal(staff_id: int, role: str, organisation_id: int) -> Principal:
    return Principal(
        kind="staff", id=staff_id, roles=frozenset({role}), organisation_id=organisation_id
    )


def _readings_csv(ctx: DemoContext, start: date, end: date, meters: int, daily_kwh: int) -> bytes:
    lines = ["date,meter_id,kwh"]
    day = start
    while day <= end:
        for m in range(1, meters + 1):
            # sunny and cloudy days: 40-130 % of the mean, to the Wh as a meter reports it
            wh = daily_kwh * 1000 * ctx.rng.randint(40, 130) // 100
            lines.append(f"{day.isoformat()},M{m},{Decimal(wh) / 1000}")
        day += timedelta(days=1)
    return ("\n".join(lines) + "\n").encode()


def seed(session: Session, ctx: DemoContext) -> None:
    staff = ctx.data.get("staff", {})
    orgs: dict[str, int] = dict(ctx.data.get("organisations", {}))
    if "admin" not in staff or "verifier" not in staff:
        ctx.summary.append("projects: skipped (the identity demo did not run)")
        return
    operator = _principal(staff["admin"]["id"], "operator_admin", staff["admin"]["organisation_id"])
    verifier = _principal(staff["verifier"]["id"], "verifier", staff["verifier"]["organisation_id"])
    verifier_org = staff["verifier"]["organisation_id"]
    people: dict[str, Principal] = {}
    for key, (name, kind, username, password, role) in NEW_ORGS.items():
        org = identity_service.create_organisation(session, None, name=name, kind=kind)
        orgs[key] = org.id
        user = identity_service.create_staff(
            session,
            None,
            username=username,
            password=password,
            roles=[role],
            organisation_id=org.id,
        )
        people[key] = _principal(user.id, role, org.id)
    sz_owner = _principal(staff["owner"]["id"], "project_owner", staff["owner"]["organisation_id"])
    sh = people["sh_owner"]

    def project(owner: Principal, methodology: tuple[str, str], **kw: Any) -> int:
        return projects_service.create_project(
            session,
            owner,
            methodology_id=methodology[0],
            methodology_version=methodology[1],
            crediting_start=kw.pop("crediting_start", date(2025, 1, 1)),
            crediting_end=kw.pop("crediting_end", date(2034, 12, 31)),
            **kw,
        ).id

    def to_registered(pid: int, owner: Principal, stop: str = "registered") -> None:
        projects_service.submit(session, owner, pid)
        if stop == "submitted":
            return
        projects_service.assign_verifier(session, operator, pid, verifier_org_id=verifier_org)
        projects_service.validate(session, verifier, pid)
        if stop == "validated":
            return
        projects_service.register(session, operator, pid)

    zhangjiang = project(
        sh,
        SH_PV,
        name="张江科学城厂房屋顶分布式光伏",
        project_type="rooftop_pv",
        location="上海市浦东新区张江路 1000 号 1-5 号厂房屋顶",
        district="上海市浦东新区",
        capacity_w=800_000,
        description="5 栋厂房屋顶, 800 kWp 单晶硅组件, 自发自用余电上网",
    )
    projects_service.add_document(
        session,
        sh,
        zhangjiang,
        filename="张江屋顶光伏项目设计文件.pdf",
        content_type="application/pdf",
        data=b"%PDF-1.7\n% demo project design document (PDD)\n%%EOF\n",
    )
    to_registered(zhangjiang, sh)
    xinzhuang = project(
        sh,
        SH_PV,
        name="莘庄工业区仓储屋顶光伏",
        project_type="rooftop_pv",
        location="上海市闵行区莘庄工业区春东路 500 号",
        district="上海市闵行区",
        capacity_w=950_000,
        description="物流仓储屋顶 950 kWp",
    )
    to_registered(xinzhuang, sh)
    jiangxia = project(
        sh,
        WH_PV,
        name="江夏经开区屋顶光伏",
        project_type="rooftop_pv",
        location="武汉市江夏区文化大道 99 号",
        district="武汉市江夏区",
        capacity_w=600_000,
    )
    to_registered(jiangxia, sh, stop="validated")
    project(
        sh,
        SH_PV,
        name="宝山工业园屋顶光伏(筹备)",
        project_type="rooftop_pv",
        location="上海市宝山区罗店镇",
        district="上海市宝山区",
        capacity_w=400_000,
    )  # stays a draft
    bus = project(
        people["bus_owner"],
        BUS,
        name="深圳巴士集团纯电动公交车队减排",
        project_type="bus_fleet",
        location="深圳市福田区 6 条线路 120 辆纯电动公交",
        district="深圳市福田区",
        description="以乘客人公里计, 按深圳公交碳普惠方法学",
    )
    to_registered(bus, people["bus_owner"], stop="submitted")
    forest_methodology = _forestry_methodology(session)
    forest_note = ""
    if forest_methodology is not None:
        forest = project(
            people["forest_owner"],
            forest_methodology,
            name="神农架林区碳汇造林",
            project_type="forestry",
            location="湖北省神农架林区松柏镇",
            district="神农架林区",
            area_m2=3_000_000,
        )
        to_registered(forest, people["forest_owner"], stop="submitted")
    else:
        forest_note = " (forestry owner created; no forestry methodology in the catalogue yet)"
    nanshan = project(
        sz_owner,
        SH_PV,
        name="南山科技园屋顶光伏",
        project_type="rooftop_pv",
        location="深圳市南山区科技园南区",
        district="深圳市南山区",
        capacity_w=500_000,
    )
    projects_service.submit(session, sz_owner, nanshan)
    projects_service.assign_verifier(session, operator, nanshan, verifier_org_id=verifier_org)
    projects_service.reject(
        session,
        verifier,
        nanshan,
        reason="项目位于深圳, 所选方法学仅适用于上海; 请按适用于深圳的方法学重新申报",
    )

    # Monitoring reports: H1 from meter readings, H2 typed in and corrected by the verifier.
    h1 = projects_service.file_report(
        session,
        sh,
        zhangjiang,
        period_start=date(2025, 1, 1),
        period_end=date(2025, 6, 30),
        readings_csv=_readings_csv(ctx, date(2025, 1, 1), date(2025, 6, 30), 2, 1200),
    )
    projects_service.verify_report(session, verifier, h1.id)
    projects_service.approve_report(session, operator, h1.id)
    h2 = projects_service.file_report(
        session,
        sh,
        zhangjiang,
        period_start=date(2025, 7, 1),
        period_end=date(2025, 12, 31),
        inputs={"kwh": "480250.5"},
    )
    projects_service.verify_report(
        session,
        verifier,
        h2.id,
        corrected_inputs={"kwh": "478900"},
        comment="M2 表 11 月读数含调试发电 1350.5 kWh, 予以扣除",
    )
    projects_service.approve_report(session, operator, h2.id)
    x1 = projects_service.file_report(
        session,
        sh,
        xinzhuang,
        period_start=date(2025, 1, 1),
        period_end=date(2025, 12, 31),
        inputs={"kwh": "1045000"},
    )
    projects_service.verify_report(session, verifier, x1.id)
    projects_service.approve_report(session, operator, x1.id)
    projects_service.file_report(  # awaits verification
        session,
        sh,
        xinzhuang,
        period_start=date(2026, 1, 1),
        period_end=date(2026, 3, 31),
        inputs={"kwh": "231000"},
    )

    # Sales to buyers, then retirements for named purposes.
    owner_account = registry_service.account_for_organisation(session, sh.organisation_id or 0)
    assert h1.batch_id is not None and x1.batch_id is not None and h2.batch_id is not None
    moves = [
        ("marathon", h1.batch_id, 60),
        ("company", h1.batch_id, 80),
        ("eco", x1.batch_id, 25),
    ]
    for key, batch_id, qty in moves:
        target = registry_service.account_for_organisation(session, orgs[key])
        registry_service.transfer(
            session,
            sh,
            from_account_id=owner_account.id,
            to_account_id=target.id,
            batch_id=batch_id,
            quantity=qty,
            idempotency_key=f"demo-sale-{key}",
        )
    retirements = [
        (
            "marathon",
            h1.batch_id,
            52,
            "event_neutrality",
            "2025 上海马拉松",
            "赛事碳中和: 参赛者交通与赛事运营排放",
        ),
        (
            "company",
            h1.batch_id,
            80,
            "corporate_neutrality",
            "上海云杉数据科技有限公司",
            "2025 年度运营碳中和 (范围一、二)",
        ),
        (
            "eco",
            x1.batch_id,
            25,
            "eco_compensation",
            "(2025)赣0702刑初88号 滥伐林木案 生态修复",
            "以碳代偿: 法院判令被告单位认购并注销碳汇/减排量, 替代性修复受损生态",
        ),
    ]
    numbers = []
    for key, batch_id, qty, purpose, beneficiary, note in retirements:
        holder = registry_service.account_for_organisation(session, orgs[key])
        event = registry_service.retire(
            session,
            people[key],
            account_id=holder.id,
            batch_id=batch_id,
            quantity=qty,
            purpose=purpose,
            beneficiary=beneficiary,
            note=note,
            idempotency_key=f"demo-retire-{key}",
        )
        numbers.append(event.retirement_no)
    registry_service.cancel(
        session,
        operator,
        account_id=owner_account.id,
        batch_id=h2.batch_id,
        quantity=2,
        reason="签发后复核: M2 表校准偏差 0.9%, 超发 2 t 予以注销",
        idempotency_key="demo-cancel-1",
    )

    personal = _personal_batch(session, operator)
    totals = registry_service.totals(session)
    ctx.data["projects"] = {"zhangjiang": zhangjiang, "xinzhuang": xinzhuang, "bus": bus}
    ctx.data["registry"] = {"retirements": numbers, "owner_account": owner_account.id}
    counts = projects_service.counts_by_status(session)
    ctx.summary.append(
        "projects: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + forest_note
        + "; staff owner_sh / owner-sh-demo-2026, buyer_marathon / buyer-marathon-demo-2026"
    )
    ctx.summary.append(
        f"registry: {totals['issued']} credits issued, {totals['retired']} retired "
        f"({', '.join(n for n in numbers if n)}), {totals['cancelled']} cancelled{personal}"
    )


def _forestry_methodology(session: Session) -> tuple[str, str] | None:
    for m in methodology_service.catalogue(session).all():
        if "forest" in m.id or m.scenario in ("forestry", "carbon_sink"):
            return (m.id, m.version)
    return None


def _personal_batch(session: Session, operator: Principal) -> str:
    try:
        with session.begin_nested():
            batch = registry_service.issue_personal_batch(
                session,
                operator,
                scenario="metro",
                start=date(2020, 1, 1),
                end=date.today(),  # noqa: DTZ011 - the demo's whole history, any zone will do
                idempotency_key="demo-personal-metro",
            )
    except (TanhuiError, ImportError) as exc:
        return f"; no personal batch ({getattr(exc, 'code', 'activity missing')})"
    return f"; personal metro batch {registry_service.batch_prefix(batch)} ({batch.quantity} t)"
