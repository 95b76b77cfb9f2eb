"""Operator console (desk first): staff login, dashboard with charts, review queue, methodologies
and emission factors (upload with errors by line and field, publish), partners and keys, mall
management, ledger check. Every page calls the owning part's service, never its tables."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tanhui import wiring
from tanhui.activity import service as activity_service
from tanhui.identity import service as identity_service
from tanhui.identity.auth import set_session_cookie
from tanhui.identity.principal import Principal
from tanhui.incentives import service as incentives_service
from tanhui.kit.db import utcnow
from tanhui.kit.errors import InvalidInput, TanhuiError
from tanhui.kit.http import get_session
from tanhui.kit.settings import get_settings
from tanhui.ledger import service as ledger_service
from tanhui.mall import service as mall_service
from tanhui.methodology import service as methodology_service
from tanhui.methodology.errors import MethodologyInvalid
from tanhui.methodology.loader import SCENARIOS
from tanhui.projects import service as projects_service
from tanhui.registry import service as registry_service
from tanhui.web import charts, formatting, i18n, render
from tanhui.web.auth import safe_next, staff_page, web_principal
from tanhui.web.labels import scenario_name
from tanhui.web.views import public
from tanhui.web.views.common import (
    N_,
    Posted,
    error_map,
    error_page,
    flash,
    form_data,
    form_with_files,
    require_role,
    to_int,
)

router = APIRouter(prefix="/console", include_in_schema=False)

REVIEWERS = ("reviewer", "operator_admin")
REVIEW_PAGE = 50  # held records shown at once, oldest first
RECENT_DECISIONS = 10  # decided partner applications listed under the pending ones
OPERATORS = ("operator_admin",)
DASHBOARD_DAYS = 14


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, principal: Principal | None = Depends(web_principal)) -> Response:
    nxt = safe_next(request.query_params.get("next"), "/console")
    if principal is not None and principal.kind == "staff":
        return render.redirect(nxt)
    return render.render(request, "console/login.html", {"next": nxt, "flash": flash(request)})


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    session: Session = Depends(get_session),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    nxt = safe_next(data.get("next"), "/console")
    username = data.get("username", "").strip()
    try:
        _, token = identity_service.login_staff(
            session, username=username, password=data.get("password", "")
        )
    except TanhuiError as exc:
        errors = error_map(request, exc)
        if "username" not in errors and "password" not in errors:
            errors = {"password": next(iter(errors.values()))}
        return render.render(
            request,
            "console/login.html",
            {"next": nxt, "form": {"username": username}, "errors": errors},
            status_code=exc.status_code,
        )
    response = render.redirect(nxt)
    set_session_cookie(response, token, secure=request.url.scheme == "https")
    return response


# --- dashboard ----------------------------------------------------------------------------------


def _local_days(n: int) -> list[date]:
    today = utcnow().astimezone(get_settings().zone).date()
    return [today - timedelta(days=k) for k in range(n - 1, -1, -1)]


def dashboard_figures(session: Session, lang: str) -> dict[str, Any]:
    """The operator's platform figures.

    Participants and reductions by day and scenario come from `activity_service.platform_summary`,
    credits from the registry, projects by status from the projects part.
    """
    _ = i18n.translator(lang)
    days = _local_days(DASHBOARD_DAYS)
    issued_on = incentives_service.issued_by_day(session, first=days[0], last=days[-1])
    spent_on = mall_service.spent_by_day(session, first=days[0], last=days[-1])
    issued = [issued_on.get(d, 0) for d in days]
    spent = [spent_on.get(d, 0) for d in days]
    labels = [d.isoformat()[5:] for d in days]
    figures: dict[str, Any] = {
        "total_mg": public.total_reduction_mg(session),
        "points": mall_service.points_report(session),
        "points_chart": charts.line(
            _("Points issued and redeemed per day"),
            labels,
            {_("Issued"): issued, _("Redeemed"): spent},
            lambda v: formatting.integer(v, lang),
        ),
        "platform": None,
        "credits": None,
        "projects": None,
    }
    summary = activity_service.platform_summary(session)
    figures["platform"] = summary
    by_day = summary["daily"]
    scenarios = sorted({s for d in by_day for s in d["by_scenario"]})
    figures["reduction_chart"] = charts.stacked(
        _("Reductions by day and scenario"),
        [str(d["date"])[5:] for d in by_day],
        {
            scenario_name(s, lang): [int(d["by_scenario"].get(s, 0)) for d in by_day]
            for s in scenarios
        },
        lambda mg: formatting.mass(mg, lang),
    )
    figures["credits"] = dict(registry_service.totals(session))
    figures["projects"] = projects_service.counts_by_status(session)
    return figures


@router.get("", response_class=HTMLResponse)
def dashboard(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    return render.render(
        request,
        "console/dashboard.html",
        {"f": dashboard_figures(session, render.lang_of(request)), "flash": flash(request)},
        principal=principal,
    )


# --- review queue -------------------------------------------------------------------------------


def _review_page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    errors: dict[int, dict[str, str]] | None = None,
    bulk_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    reason = request.query_params.get("reason")
    if reason not in activity_service.REVIEW_REASONS:
        reason = None
    queue = activity_service.review_queue(session, principal, limit=REVIEW_PAGE, reason=reason)
    for row in queue:
        row["trip"] = _trip(row)
    return render.render(
        request,
        "console/review.html",
        {
            "queue": queue,
            "counts": activity_service.review_counts(session),
            "reasons": activity_service.REVIEW_REASONS,
            "reason": reason,
            "row_errors": errors or {},
            "bulk_errors": bulk_errors or {},
            "flash": _bulk_flash(request) or flash(request),
        },
        principal=principal,
        status_code=status_code,
    )


def _trip(row: dict[str, Any]) -> dict[str, Any] | None:
    """Minutes and average speed of a held trip: what a reviewer weighs first."""
    start, end = row.get("started_at"), row.get("ended_at")
    if start is None or end is None or end <= start:
        return None
    minutes = (end - start).total_seconds() / 60
    try:
        km = Decimal(str((row.get("quantities") or {}).get("distance_km")))
    except InvalidOperation:
        return {"minutes": round(minutes), "kmh": None}
    if not km.is_finite():
        return {"minutes": round(minutes), "kmh": None}
    return {"minutes": round(minutes), "kmh": round(float(km) / (minutes / 60), 1)}


def _bulk_flash(request: Request) -> dict[str, str] | None:
    """After a bulk decision: how many were decided, and how many could not be (decided by
    someone else meanwhile, or gone)."""
    if request.query_params.get("done") != "decided":
        return None
    decided = to_int(request.query_params.get("decided") or "0") or 0
    missed = to_int(request.query_params.get("missed") or "0") or 0
    _ = i18n.translator(render.lang_of(request))
    text = _("%(n)s records decided.", n=decided)
    if missed:
        text += " " + _(
            "%(n)s could not be: another reviewer may have decided them first.", n=missed
        )
    return {"kind": "warn" if missed else "ok", "text": text}


@router.get("/review", response_class=HTMLResponse)
def review(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    try:
        require_role(principal, *REVIEWERS)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console")
    return _review_page(request, session, principal)


@router.post("/review", response_class=HTMLResponse)
def review_decide_many(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    """The ticked records (pick_<id> = 1), approved or rejected with one reason."""
    picked = [to_int(k.removeprefix("pick_")) for k in data if k.startswith("pick_")]
    try:
        require_role(principal, *REVIEWERS)
        ids = [i for i in picked if i is not None and i > 0]
        if not ids:
            raise InvalidInput(N_("tick at least one record"), field="records")
        outcomes = activity_service.decide_many(
            session, principal, ids, decision=data.get("decision", ""), reason=data.get("reason")
        )
    except TanhuiError as exc:
        session.rollback()
        if exc.status_code == 403:
            return error_page(request, exc, principal, back="/console/review")
        return _review_page(
            request,
            session,
            principal,
            bulk_errors=error_map(request, exc),
            status_code=exc.status_code,
        )
    decided = sum(1 for o in outcomes if o["decided"])
    back = data.get("back_reason", "")
    keep = f"&reason={back}" if back in activity_service.REVIEW_REASONS else ""
    return render.redirect(
        f"/console/review?done=decided&decided={decided}&missed={len(outcomes) - decided}{keep}"
    )


@router.post("/review/{record_id}", response_class=HTMLResponse)
def review_decide(
    request: Request,
    record_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    rid = to_int(record_id)
    decision = data.get("decision")
    try:
        require_role(principal, *REVIEWERS)
        if rid is None:
            raise InvalidInput(N_("no such record"), field="record_id")
        if decision == "approve":
            activity_service.approve(session, principal, rid)
        elif decision == "reject":
            activity_service.reject(session, principal, rid, reason=data.get("reason", ""))
        else:
            raise InvalidInput(N_("choose approve or reject"), field="decision")
    except TanhuiError as exc:
        session.rollback()
        if rid is None or exc.status_code == 403:
            return error_page(request, exc, principal, back="/console/review")
        return _review_page(
            request,
            session,
            principal,
            errors={rid: error_map(request, exc)},
            status_code=exc.status_code,
        )
    return render.redirect(
        "/console/review?done=" + ("approved" if decision == "approve" else "rejected")
    )


# --- methodologies and factors ------------------------------------------------------------------


@router.get("/methodologies", response_class=HTMLResponse)
def methodologies(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    return _methodologies_page(request, session, principal)


def _methodologies_page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    upload_errors: list[dict[str, Any]] | None = None,
    upload_message: str | None = None,
    toml_text: str = "",
    publish: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    cat = methodology_service.catalogue(session)
    assigned = methodology_service.assignments(session)
    return render.render(
        request,
        "console/methodologies.html",
        {
            "methodologies": [m.summary() for m in cat.all()],
            "assignments": assigned,
            "scenarios": sorted({m.scenario for m in cat.all()}),
            "upload_errors": upload_errors,
            "upload_message": upload_message,
            "toml_text": toml_text,
            "publish": publish or {"errors": {}, "form": {}},
            "today": utcnow().astimezone(get_settings().zone).date().isoformat(),
            "flash": flash(request),
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/methodologies/{methodology_id}", response_class=HTMLResponse)
def methodology(
    request: Request,
    methodology_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    version = request.query_params.get("version") or None
    try:
        versions = methodology_service.versions(session, methodology_id)
        chosen = methodology_service.get(session, methodology_id, version)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console/methodologies")
    return render.render(
        request,
        "console/methodology.html",
        {"m": chosen.describe(), "versions": [v.version for v in versions]},
        principal=principal,
    )


@router.post("/methodologies/upload", response_class=HTMLResponse)
def methodology_upload(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    posted: Posted = Depends(form_with_files(methodology_service.MAX_UPLOAD_BYTES + 1)),
) -> Response:
    toml_text = posted.values.get("toml_text", "")
    upload = posted.files.get("file")
    raw = upload.data if upload is not None else b""
    if raw:
        try:
            toml_text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _methodologies_page(
                request,
                session,
                principal,
                upload_errors=[
                    {"line": None, "field": "file", "message": "the file is not UTF-8 text"}
                ],
                status_code=422,
            )
    try:
        require_role(principal, *OPERATORS)
        if not toml_text.strip():
            raise InvalidInput(N_("choose a TOML file or paste its text"), field="file")
        row = methodology_service.upload(session, principal, toml_text=toml_text)
    except MethodologyInvalid as exc:
        session.rollback()
        return _methodologies_page(
            request,
            session,
            principal,
            upload_errors=[e.to_dict() for e in exc.errors],
            toml_text=toml_text,
            status_code=422,
        )
    except TanhuiError as exc:
        session.rollback()
        return _methodologies_page(
            request,
            session,
            principal,
            upload_errors=[{"line": None, "field": exc.field or "", "message": exc.message}],
            toml_text=toml_text,
            status_code=exc.status_code,
        )
    return render.redirect(
        f"/console/methodologies/{row.methodology_id}?version={row.version}&done=saved"
    )


@router.post("/methodologies/publish", response_class=HTMLResponse)
def methodology_publish(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    form = {k: data.get(k, "") for k in ("scenario", "methodology_id", "effective_from")}
    try:
        require_role(principal, *OPERATORS)
        try:
            effective = date.fromisoformat(form["effective_from"])
        except ValueError:
            raise InvalidInput(N_("a date like 2026-01-01"), field="effective_from") from None
        methodology_service.assign(
            session,
            principal,
            scenario=form["scenario"],
            methodology_id=form["methodology_id"],
            effective_from=effective,
        )
    except TanhuiError as exc:
        session.rollback()
        return _methodologies_page(
            request,
            session,
            principal,
            publish={"errors": error_map(request, exc), "form": form},
            status_code=exc.status_code,
        )
    return render.redirect("/console/methodologies?done=published")


@router.get("/factors", response_class=HTMLResponse)
def factors(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    cat = methodology_service.catalogue(session)
    tables = [cat.tables[k] for k in sorted(cat.tables)]
    return render.render(request, "console/factors.html", {"tables": tables}, principal=principal)


# --- partners -----------------------------------------------------------------------------------


def partners_page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    created: Any = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    application_errors: dict[int, dict[str, str]] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The partners with their keys, the applications waiting for a decision (and the last ones
    decided), and the form that onboards a partner directly."""
    partners = identity_service.list_partners(session)
    keys = {p.id: identity_service.partner_keys(session, p.id) for p in partners}
    pending = identity_service.list_applications(session, status="pending")
    decided = identity_service.list_applications(session, decided=True, limit=RECENT_DECISIONS)
    return render.render(
        request,
        "console/partners.html",
        {
            "partners": partners,
            "keys": keys,
            "created": created,
            "errors": errors or {},
            "form": form or {},
            "pending": pending[::-1],  # oldest first, as a queue
            "decided": decided,
            "application_errors": application_errors or {},
            "can_decide": principal.has_role(*REVIEWERS),
            "scenario_codes": SCENARIOS,
            "flash": flash(request),
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/partners", response_class=HTMLResponse)
def partners(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    return partners_page(request, session, principal)


@router.post("/partners", response_class=HTMLResponse)
def partner_create(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    form = {k: data.get(k, "") for k in ("name", "scenarios", "valid_until", "redirect_uris")}
    try:
        require_role(principal, *OPERATORS)
        if not form["name"].strip():
            raise InvalidInput(N_("a name is required"), field="name")
        valid_until = None
        if form["valid_until"].strip():
            try:
                valid_until = date.fromisoformat(form["valid_until"].strip())
            except ValueError:
                raise InvalidInput(N_("a date like 2027-12-31"), field="valid_until") from None
        created = identity_service.create_partner(
            session,
            principal,
            name=form["name"].strip(),
            scenarios=[s.strip() for s in form["scenarios"].split(",") if s.strip()],
            valid_until=valid_until,
            redirect_uris=[u.strip() for u in form["redirect_uris"].split() if u.strip()],
        )
    except TanhuiError as exc:
        session.rollback()
        return partners_page(
            request,
            session,
            principal,
            errors=error_map(request, exc),
            form=form,
            status_code=exc.status_code,
        )
    # The secret is shown once, on this response only: it is stored encrypted and never listed.
    return partners_page(request, session, principal, created=created)


@router.post("/partners/{partner_id}/rotate", response_class=HTMLResponse)
def partner_rotate(
    request: Request,
    partner_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    form: dict[str, str] = Depends(form_data),
) -> Response:
    pid = to_int(partner_id)
    try:
        if pid is None:
            raise InvalidInput(N_("no such partner"), field="partner_id")
        # The form's own key: a double click shows the one new key twice, not two keys.
        new_key = identity_service.rotate_key(
            session, principal, pid, idempotency_key=form.get("rotate_key", "")[:200] or None
        )
    except TanhuiError as exc:
        session.rollback()
        return error_page(request, exc, principal, back="/console/partners")
    # Shown once, like a new partner's first secret; the old keys stay valid for the grace period.
    return partners_page(request, session, principal, created=new_key)


@router.post("/partners/keys/{key_id}/revoke", response_class=HTMLResponse)
def partner_key_revoke(
    request: Request,
    key_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    _form: dict[str, str] = Depends(form_data),
) -> Response:
    try:
        identity_service.revoke_key(session, principal, key_id[:64])
    except TanhuiError as exc:
        session.rollback()
        return error_page(request, exc, principal, back="/console/partners")
    return render.redirect("/console/partners?done=saved")


# --- mall ---------------------------------------------------------------------------------------


def _mall_page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
    written_off: mall_service.WriteOff | None = None,
) -> HTMLResponse:
    require_role(principal, "operator_admin", "merchant")
    rewards = mall_service.list_rewards(session, include_inactive=True)
    if not mall_service.is_operator(principal):
        rewards = [r for r in rewards if r.merchant_org_id == principal.organisation_id]
    lang = render.lang_of(request)
    return render.render(
        request,
        "console/mall.html",
        {
            "rewards": rewards,
            "codes": {r.id: mall_service.available_codes(session, r.id) for r in rewards},
            "orders": mall_service.merchant_orders(session, principal, limit=30),
            "points": mall_service.points_report(session),
            "categories": [
                (k, zh if lang == "zh" else en) for k, (zh, en) in mall_service.CATEGORIES.items()
            ],
            "kinds": mall_service.KINDS,
            "is_operator": mall_service.is_operator(principal),
            "written_off": written_off,
            "errors": errors or {},
            "form": form or {},
            "flash": flash(request),
        },
        principal=principal,
        status_code=status_code,
    )


def _mall_form_error(
    request: Request,
    session: Session,
    principal: Principal,
    exc: TanhuiError,
    form: dict[str, str],
) -> HTMLResponse:
    """A mall form's error shown beside its field on the re-rendered page (or alone, if the page
    itself is not for this user)."""
    session.rollback()
    try:
        return _mall_page(
            request,
            session,
            principal,
            errors=error_map(request, exc),
            form=form,
            status_code=exc.status_code,
        )
    except TanhuiError as denied:
        return error_page(request, denied, principal, back="/console")


@router.get("/mall", response_class=HTMLResponse)
def mall(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    try:
        return _mall_page(request, session, principal)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console")


def _fen(value: str, field: str) -> int | None:
    """Yuan as typed ("12.5") to integer fen, exactly; empty is None."""
    if not value.strip():
        return None
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise InvalidInput(N_("an amount in yuan, e.g. 12.50"), field=field) from None
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidInput(N_("an amount in yuan with at most 2 decimals"), field=field)
    return int(amount * 100)


@router.post("/mall/rewards", response_class=HTMLResponse)
def reward_create(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    keys = (
        "category", "kind", "title_zh", "title_en", "price_points", "face_value", "stock",
        "codes", "merchant_org_id",
    )  # fmt: skip
    form = {k: data.get(k, "").strip() for k in keys}
    try:
        require_role(principal, "operator_admin", "merchant")
        price = to_int(form["price_points"])
        if price is None or price <= 0:
            raise InvalidInput(N_("a whole number of points above 0"), field="price_points")
        stock = to_int(form["stock"]) if form["stock"] else None
        if form["stock"] and (stock is None or stock < 0):
            raise InvalidInput(N_("a whole number, or empty for no limit"), field="stock")
        codes = to_int(form["codes"]) if form["codes"] else 0
        if codes is None or codes < 0:
            raise InvalidInput(N_("a whole number of codes"), field="codes")
        merchant = to_int(form["merchant_org_id"]) if form["merchant_org_id"] else None
        if mall_service.is_operator(principal) and merchant is None:
            raise InvalidInput(N_("the merchant organisation's number"), field="merchant_org_id")
        reward = mall_service.create_reward(
            session,
            principal,
            merchant_org_id=merchant,
            category=form["category"],
            kind=form["kind"],
            title_zh=form["title_zh"],
            title_en=form["title_en"],
            price_points=price,
            face_value_fen=_fen(form["face_value"], "face_value"),
            stock=stock,
        )
        if codes:
            mall_service.generate_codes(session, principal, reward.id, codes)
    except TanhuiError as exc:
        return _mall_form_error(request, session, principal, exc, form)
    return render.redirect("/console/mall?done=created")


@router.post("/mall/write-off", response_class=HTMLResponse)
def write_off(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    """Write a code off at the till (核销): valid once, for the merchant's own rewards only."""
    form = {"code": data.get("code", "").strip()}
    try:
        require_role(principal, "operator_admin", "merchant")
        if not form["code"]:
            raise InvalidInput(N_("type or scan the customer's code"), field="code")
        done = mall_service.verify_code(session, principal, code=form["code"])
    except TanhuiError as exc:
        return _mall_form_error(request, session, principal, exc, form)
    return _mall_page(request, session, principal, written_off=done)


@router.post("/mall/rewards/{reward_id}/active", response_class=HTMLResponse)
def reward_toggle(
    request: Request,
    reward_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    data: dict[str, str] = Depends(form_data),
) -> Response:
    rid = to_int(reward_id)
    try:
        if rid is None:
            raise InvalidInput(N_("no such reward"), field="reward_id")
        mall_service.update_reward(session, principal, rid, active=data.get("active") == "1")
    except TanhuiError as exc:
        session.rollback()
        return error_page(request, exc, principal, back="/console/mall")
    return render.redirect("/console/mall?done=saved")


# --- ledger -------------------------------------------------------------------------------------


@router.get("/ledger", response_class=HTMLResponse)
def ledger(request: Request, principal: Principal = Depends(staff_page)) -> HTMLResponse:
    return render.render(request, "console/ledger.html", {"result": None}, principal=principal)


@router.post("/ledger", response_class=HTMLResponse)
def ledger_check(
    request: Request,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
    _form: dict[str, str] = Depends(form_data),
) -> Response:
    try:
        require_role(principal, *OPERATORS)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console")
    started = utcnow()
    problems = ledger_service.check(session) + wiring.extra_checks(session)
    return render.render(
        request,
        "console/ledger.html",
        {"result": {"problems": problems, "at": started}},
        principal=principal,
    )
