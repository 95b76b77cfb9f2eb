"""Identity demo data: the platform, staff with known passwords, five Shenzhen partners, ~200 citizens."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal

if TYPE_CHECKING:
    from tanhui.demo import DemoContext

CITIZENS = 200
DISTRICTS = ["福田", "南山", "罗湖", "宝安", "龙岗", "龙华", "光明", "坪山", "盐田", "大鹏"]
# Rough weights by resident population (深圳统计年鉴): 宝安 and 龙岗 are the largest districts.
DISTRICT_WEIGHTS = [15, 14, 10, 24, 20, 18, 5, 4, 2, 1]
_ADJECTIVES = ["绿色", "低碳", "环保", "清风", "晨跑", "骑行", "阳光", "海风", "山海", "节能"]
_NOUNS = ["达人", "小能手", "先锋", "旅人", "少年", "生活家", "守护者", "使者", "爱好者", "行者"]

STAFF = [
    # username, password, roles, organisation key, display name
    ("admin", "admin-demo-2026", ["operator_admin"], "platform", "平台管理员"),
    ("reviewer", "reviewer-demo-2026", ["reviewer"], "platform", "审核员 王晓"),
    ("merchant", "merchant-demo-2026", ["merchant"], "merchant", "商户 绿意生活"),
    ("verifier", "verifier-demo-2026", ["verifier"], "verifier", "核查员 李工"),
    ("owner", "owner-demo-2026", ["project_owner"], "project_owner", "业主 陈总"),
]
ORGANISATIONS = {
    "merchant": ("绿意生活商城", "merchant", "91440300MA5DEMO01X"),
    "verifier": ("深圳环境核查中心", "verifier", "91440300MA5DEMO02X"),
    "project_owner": ("前海光伏屋顶项目有限公司", "project_owner", "91440300MA5DEMO03X"),
}
PARTNERS = [
    # name, scenarios, prefix of the partner's user ids
    ("深圳地铁", ["metro"], "sz-metro"),
    ("深圳巴士集团", ["bus"], "sz-bus"),
    ("青骑共享单车", ["bike_share"], "bike"),
    ("速充新能源充电", ["ev_charging"], "ev"),
    ("南方电网深圳供电局", ["electricity_saving"], "csg"),
]
APPROVED_UNTIL = date(
    2027, 12, 31
)  # as Shanghai's time-limited approvals (e.g. bikes to 2027-12-31)


class DemoCitizen(dict[str, Any]):
    """A citizen for later seeders: a dict (citizen_id, phone, partner_user_ids) that also has `.id`."""

    @property
    def id(self) -> int:
        return int(self["citizen_id"])


def seed(session: Session, ctx: DemoContext) -> None:
    rng = ctx.rng
    platform = identity_service.platform_organisation(session)
    orgs = {"platform": platform.id}
    for key, (name, kind, licence) in ORGANISATIONS.items():
        orgs[key] = identity_service.create_organisation(
            session, None, name=name, kind=kind, licence_no=licence
        ).id
    staff: dict[str, dict[str, Any]] = {}
    for username, password, roles, org_key, display in STAFF:
        user = identity_service.create_staff(
            session,
            None,
            username=username,
            password=password,
            roles=roles,
            organisation_id=orgs[org_key],
            display_name=display,
        )
        staff[username] = {
            "id": user.id,
            "password": password,
            "roles": roles,
            "organisation_id": orgs[org_key],
        }

    partners: list[dict[str, Any]] = []
    for name, scenarios, prefix in PARTNERS:
        created = identity_service.create_partner(
            session,
            None,
            name=name,
            scenarios=scenarios,
            valid_until=APPROVED_UNTIL,
            redirect_uris=[
                f"https://{prefix}.example.com/tanhui/callback",
                "http://localhost:8000/demo/partner-callback",
            ],
        )
        partners.append(
            {
                "partner_id": created.partner_id,
                "organisation_id": created.organisation_id,
                "key_id": created.key_id,
                "secret": created.secret,
                "scenarios": scenarios,
                "name": name,
                "prefix": prefix,
            }
        )
    # One application waiting in the reviewer's queue.
    identity_service.apply_as_partner(
        session,
        None,
        name="鹏城轮渡",
        licence_no="91440300MA5DEMO04X",
        scenarios=["ferry"],
        data_collection="闸机刷卡与扫码乘船记录，每日推送",
        redirect_uris=["https://ferry.example.com/tanhui/callback"],
        contact="刘工 ops@ferry.example.com",
    )

    citizens: list[DemoCitizen] = []
    used_phones: set[str] = set()
    rows: list[tuple[int, dict[str, str | None]]] = []
    while len(citizens) < CITIZENS:
        phone = f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"
        if phone in used_phones:
            continue
        used_phones.add(phone)
        nickname = rng.choice(_ADJECTIVES) + rng.choice(_NOUNS)
        if rng.random() < 0.5:
            nickname += str(rng.randrange(10, 100))
        district = rng.choices(DISTRICTS, weights=DISTRICT_WEIGHTS)[0]
        citizen = identity_service.citizen_for_phone(
            session, phone, nickname=nickname, district=district
        )
        # Most people use transit; fewer have an EV or linked their electricity account.
        chosen = [
            p
            for p, share in zip(partners, [0.8, 0.6, 0.5, 0.2, 0.35], strict=True)
            if rng.random() < share
        ] or [partners[0]]
        user_ids: dict[int, str] = {}
        for p in chosen:
            user_ids[p["partner_id"]] = f"{p['prefix']}-{rng.randrange(16**8):08x}"
            rows.append(
                (
                    len(rows) + 2,
                    {
                        "partner_id": str(p["partner_id"]),
                        "partner_user_id": user_ids[p["partner_id"]],
                        "phone": phone,
                        "scenarios": ";".join(p["scenarios"]),
                    },
                )
            )
        citizens.append(
            DemoCitizen(
                citizen_id=citizen.id,
                phone=phone,
                nickname=nickname,
                district=district,
                partner_user_ids=user_ids,
            )
        )
    result = identity_service.import_bindings(session, None, rows)

    # The reviewer looked one citizen up: the citizen sees it in their access log.
    reviewer = Principal(
        kind="staff",
        id=staff["reviewer"]["id"],
        roles=frozenset({"reviewer"}),
        organisation_id=orgs["platform"],
        display_name="审核员 王晓",
    )
    identity_service.read_citizen_as_staff(
        session, reviewer, citizens[0].id, why="客服工单 #1024：积分未到账"
    )

    ctx.data["organisations"] = orgs
    ctx.data["staff"] = staff
    ctx.data["partners"] = partners
    ctx.data["citizens"] = citizens
    ctx.summary.append(
        f"identity: {len(citizens)} citizens, {result.created} partner bindings, "
        f"{len(partners)} partners ({', '.join(p['name'] for p in partners)})"
    )
    ctx.summary.append(
        "identity: staff logins — "
        + ", ".join(f"{u}/{pw} ({roles[0]})" for u, pw, roles, _, _ in STAFF)
    )
    ctx.summary.append(
        f"identity: citizen login with phone {citizens[0]['phone']} (code printed to the log)"
    )
