"""Console: one partner's feed over the last days — records per day and status, and why records
were refused — so an operator sees a partner's rejections climb before citizens complain."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from tanhui.activity import reports
from tanhui.identity import service as identity_service
from tanhui.identity.principal import Principal
from tanhui.kit.errors import NotFound, TanhuiError
from tanhui.kit.http import get_session
from tanhui.web import charts, i18n, render
from tanhui.web.auth import staff_page
from tanhui.web.views.common import N_, error_page, require_role, to_int

router = APIRouter(prefix="/console/partners", include_in_schema=False)

VIEWERS = ("reviewer", "operator_admin")
SPANS = (7, 14, 30, 90)  # the day ranges offered; anything else falls back to the default
DEFAULT_SPAN = 14
# Credited, in review, rejected, reversed: the colours of the status badges.
STATUS_COLOURS = ("#1f8a5b", "#c9a227", "#b3261e", "#9aa5a0")


def _share(n: int, total: int) -> str | None:
    """`n` of `total` in whole percent ("<1%" rather than a misleading "0%"); None for no total."""
    if not total:
        return None
    percent = round(100 * n / total)
    return "<1%" if n and not percent else f"{percent}%"


@router.get("/{partner_id}", response_class=HTMLResponse)
def partner_page(
    request: Request,
    partner_id: str,
    session: Session = Depends(get_session),
    principal: Principal = Depends(staff_page),
) -> HTMLResponse:
    try:
        require_role(principal, *VIEWERS)
        pid = to_int(partner_id)
        if pid is None:
            raise NotFound(N_("no such partner"), code="partner_not_found")
        partner = identity_service.get_partner(session, pid)
    except TanhuiError as exc:
        return error_page(request, exc, principal, back="/console/partners")
    days = to_int(request.query_params.get("days"))
    days = days if days in SPANS else DEFAULT_SPAN
    activity = reports.partner_activity(session, pid, days=days)
    _ = i18n.translator(render.lang_of(request))
    daily = activity["daily"]
    chart = charts.stacked(
        _("Records per day"),
        [d["date"][5:] for d in daily],
        {
            _("Credited"): [d["credited"] for d in daily],
            _("In review"): [d["review"] for d in daily],
            _("Rejected"): [d["rejected"] for d in daily],
            _("Reversed"): [d["reversed"] for d in daily],
        },
        colours=STATUS_COLOURS,
    )
    records = activity["totals"]["records"]
    return render.render(
        request,
        "console/partner.html",
        {
            "partner": partner,
            "activity": activity,
            "days": days,
            "spans": SPANS,
            "chart": chart,
            "share": partial(_share, total=records),
        },
        principal=principal,
    )
