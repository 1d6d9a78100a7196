"""The Callback UI's list of callbacks: filters, pages of 250 (GES's page size), counts per state,
bulk cancel and the CSV export of the filtered set."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from dialback.callbacks import repository as callbacks_repo
from dialback.callbacks import views
from dialback.callbacks.query import PHONE_MAX
from dialback.callbacks.repository import CallbackFilter
from dialback.callbacks.service import BULK_CANCEL_MAX, STATES
from dialback.identity.roles import Permission, Principal
from dialback.kit.errors import BadRequest
from dialback.kit.names import NAME_MAX, is_name
from dialback.kit.phone import mask
from dialback.ui.deps import UI_PREFIX, UiProblem, ui_requires, ui_router
from dialback.ui.rendering import operator_zone, render
from dialback.web.deps import ContainerDep

NAV_PATHS = ("/callbacks",)
PAGE_SIZE = 250
CONFIRM_SHOWN = 20
"""How many callbacks the bulk-cancel confirmation lists (then "and K more")."""
MAX_PAGE = 40_000
router = ui_router()

FILTER_FIELDS = (
    "tenant",
    "service",
    "state",
    "phone",
    "created_from",
    "created_to",
    "due_from",
    "due_to",
    "parked",
)
LABELS = {
    "tenant": "Tenant",
    "service": "Service",
    "state": "State",
    "phone": "Phone number",
    "created_from": "Created from",
    "created_to": "Created to",
    "due_from": "Due from",
    "due_to": "Due to",
    "parked": "Parked",
    "sort": "Sort",
    "page": "Page",
}
PARKED = {"": None, "only": True, "none": False}
"""The list's ``parked`` values and what each asks: any, only the parked ones, none of them."""
SORTS = {"": "-createdTime", "due": "dueTime", "-due": "-dueTime"}
"""The list's ``sort`` values and the search order each asks (default: newest created first)."""


@dataclass
class ListQuery:
    """The list's query string read: the values as typed (to refill the form), the problems by
    field, and what to search."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    tenant: str | None = None
    where: CallbackFilter = field(default_factory=CallbackFilter)
    sort: str = ""
    page: int = 1

    def link(self, **changes: Any) -> str:
        """This query's string with ``changes`` (empty values left out)."""
        merged = {**self.values, "sort": self.sort, "page": str(self.page), **changes}
        if merged.get("page") == "1":
            merged.pop("page")
        return urlencode([(k, v) for k, v in merged.items() if v])

    def filters_only(self) -> str:
        """The filters alone (no sort, no page): the export's and the bulk cancel's way back."""
        return urlencode([(k, self.values[k]) for k in FILTER_FIELDS if self.values.get(k)])


def _local_time(text: str, zone: ZoneInfo) -> float:
    """A ``datetime-local`` value (wall-clock time in the operator's zone) as epoch seconds."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not a date and time (YYYY-MM-DDTHH:MM)") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone)  # fold=0: a repeated hour is its first occurrence
    if not 1970 <= at.year <= 3000:
        raise ValueError("out of range (1970 to 3000)")
    return at.timestamp()


def parse_list_query(params: Mapping[str, str], zone: ZoneInfo) -> ListQuery:
    """Read the list's filters; a problem goes to ``errors`` under its field."""
    values = {k: params.get(k, "").strip()[:200] for k in FILTER_FIELDS}
    q = ListQuery(values)
    err = q.errors
    for name in ("tenant", "service"):
        if values[name] and (len(values[name]) > NAME_MAX or not is_name(values[name])):
            err[name] = f"{LABELS[name]}: not a valid name"
    if values["state"] and values["state"] not in STATES:
        err["state"] = f"State: use one of {', '.join(STATES)}"
    if len(values["phone"]) > PHONE_MAX:
        err["phone"] = f"Phone number: at most {PHONE_MAX} characters"
    times: dict[str, float | None] = {}
    for name in ("created_from", "created_to", "due_from", "due_to"):
        times[name] = None
        if values[name]:
            try:
                times[name] = _local_time(values[name], zone)
            except ValueError as exc:
                err[name] = f"{LABELS[name]}: {exc}"
    for start, end in (("created_from", "created_to"), ("due_from", "due_to")):
        lo, hi = times[start], times[end]
        if lo is not None and hi is not None and hi <= lo:
            err[end] = f"{LABELS[end]}: must be after {LABELS[start].lower()}"
    if values["parked"] not in PARKED:
        err["parked"] = "Parked: use only or none (or nothing: any)"
    sort = params.get("sort", "")
    if sort not in SORTS:
        err["sort"] = "Sort: use due or -due (or none: newest created first)"
        sort = ""
    q.sort = sort
    page = params.get("page", "1") or "1"
    if not page.isdigit() or not 1 <= int(page) <= MAX_PAGE:
        err["page"] = f"Page: a whole number from 1 to {MAX_PAGE}"
    else:
        q.page = int(page)
    q.tenant = values["tenant"] or None
    q.where = CallbackFilter(
        state=values["state"] or None,
        service_name=values["service"] or None,
        created_from=times["created_from"],
        created_to=times["created_to"],
        due_from=times["due_from"],
        due_to=times["due_to"],
        parked=PARKED.get(values["parked"]),
        phone_number=values["phone"] or None,
    )
    return q


def _field_of(exc: BadRequest) -> str:
    # The services name the admin API's fields; the form's are these.
    return "phone" if exc.message.startswith("phoneNumber") else ""


@router.get("/callbacks", name="callbacks_list")
async def callbacks_list(
    request: Request, c: ContainerDep, who: Principal = ui_requires(Permission.CALLBACKS_READ)
) -> Response:
    """The callbacks matching the filters, 250 a page, with the counts per state."""
    zone = operator_zone(request)
    q = parse_list_query(request.query_params, zone)
    choices = await c.callbacks.filter_choices(who.tenants)
    context: dict[str, Any] = {
        "q": q,
        "choices": choices,
        "states": STATES,
        "labels": LABELS,
        "page_size": PAGE_SIZE,
        "bulk_max": BULK_CANCEL_MAX,
        "can_write": who.can(Permission.CALLBACKS_WRITE),
        "can_export": who.can(Permission.CALLBACKS_EXPORT),
        "mask": mask,
        "phone_max": PHONE_MAX,
        "outcome": _outcome(request.query_params),
        "rows": [],
        "counts": {},
        "count_cap": callbacks_repo.COUNT_CAP,
        "total": 0,
        "total_exact": True,
        "pages": 0,
    }
    if not q.errors:
        try:
            page = await c.callbacks.search(
                q.tenant,
                q.where,
                limit=PAGE_SIZE,
                offset=(q.page - 1) * PAGE_SIZE,
                scope=who.tenants,
                sort=SORTS[q.sort],
            )
            counts = await c.callbacks.count_by_state(
                q.tenant, CallbackFilter(**{**_fields(q.where), "state": None}), scope=who.tenants
            )
        except BadRequest as exc:
            if not _field_of(exc):
                raise
            q.errors[_field_of(exc)] = f"{LABELS['phone']}: {exc.message.partition(': ')[2]}"
        else:
            context.update(
                rows=page.rows,
                names=page.tenant_names,
                counts=counts,
                total=page.total,
                total_exact=page.total_exact,
                # Past the count's cap the last page is unknown: one more while pages are full.
                pages=max(1, -(-page.total // PAGE_SIZE))
                if page.total_exact
                else min(MAX_PAGE, q.page + (len(page.rows) == PAGE_SIZE)),
            )
    status = 400 if q.errors else 200
    return render(request, "callbacks/list.html", status, **context)


@router.get("/callbacks/counts", name="callbacks_counts")
async def callbacks_counts(
    request: Request, c: ContainerDep, who: Principal = ui_requires(Permission.CALLBACKS_READ)
) -> Response:
    """The counts per state for the list's filters (but its state), as the list shows them:
    what ``callbacks-list.js`` refreshes them with."""
    q = parse_list_query(request.query_params, operator_zone(request))
    if q.errors:
        raise UiProblem(400, "Bad request", "; ".join(q.errors.values()))
    counts = await c.callbacks.count_by_state(
        q.tenant, CallbackFilter(**{**_fields(q.where), "state": None}), scope=who.tenants
    )
    return render(
        request,
        "callbacks/counts.html",
        q=q,
        states=STATES,
        counts=counts,
        count_cap=callbacks_repo.COUNT_CAP,
    )


def _fields(where: CallbackFilter) -> dict[str, Any]:
    return {name: getattr(where, name) for name in where.__dataclass_fields__}


def _back_query(form: Any) -> str:
    """The list's filters a bulk-cancel form carries back (only the list's own fields)."""
    back_text = form.get("back")
    back = parse_qsl(back_text if isinstance(back_text, str) else "")[:20]
    return urlencode([(k, v) for k, v in back if k in FILTER_FIELDS])


def _ids(form: Any) -> list[str]:
    return [v for v in form.getlist("ids") if isinstance(v, str)]


@router.post("/callbacks/cancel", name="bulk_cancel_callbacks")
async def bulk_cancel(
    request: Request, c: ContainerDep, who: Principal = ui_requires(Permission.CALLBACKS_WRITE)
) -> Response:
    """Ask to confirm cancelling the selected callbacks: how many, which (numbers masked)."""
    form = await request.form()
    ids = _ids(form)
    preview = await c.callbacks.bulk_cancel_preview(ids, who.tenants)
    return render(
        request,
        "callbacks/confirm_cancel.html",
        preview=preview,
        shown=preview.rows[:CONFIRM_SHOWN],
        more=max(0, len(preview.rows) - CONFIRM_SHOWN),
        ids=[r.id for r in preview.rows],
        mask=mask,
        back_query=_back_query(form),
    )


@router.post("/callbacks/cancel/confirm", name="bulk_cancel_confirmed")
async def bulk_cancel_confirmed(
    request: Request, c: ContainerDep, who: Principal = ui_requires(Permission.CALLBACKS_WRITE)
) -> Response:
    """Cancel the confirmed callbacks; back to the list with what was done."""
    form = await request.form()
    result = await c.callbacks.bulk_cancel(_ids(form), who.tenants)
    done = urlencode(
        {
            "cancelled": len(result.cancelled),
            "skipped": len(result.refused) - result.missing,
            "missing": result.missing,
        }
    )
    back = _back_query(form)
    base = str(request.scope.get("root_path", "")) + UI_PREFIX
    target = f"{base}/callbacks?" + (f"{back}&" if back else "") + done
    return RedirectResponse(target, status_code=303)


def _outcome(params: Mapping[str, str]) -> dict[str, int] | None:
    """A bulk cancel's counts the list was sent back with (None: none, or not numbers)."""
    keys = ("cancelled", "skipped", "missing")
    if not any(k in params for k in keys):
        return None
    got = {k: params.get(k, "0") for k in keys}
    if not all(v.isdigit() and int(v) <= BULK_CANCEL_MAX for v in got.values()):
        return None
    return {k: int(v) for k, v in got.items()}


@router.get("/callbacks/export.csv", name="export_callbacks_csv")
async def export_csv(
    request: Request, c: ContainerDep, who: Principal = ui_requires(Permission.CALLBACKS_EXPORT)
) -> Response:
    """The callbacks matching the list's filters as CSV, streamed in batches (numbers masked,
    times in UTC ISO-8601, no userData)."""
    q = parse_list_query(request.query_params, operator_zone(request))
    if q.errors:
        raise UiProblem(400, "Bad request", "; ".join(q.errors.values()))
    batches = await c.callbacks.export(q.tenant, q.where, scope=who.tenants)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return StreamingResponse(
        views.export_csv(batches),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="callbacks-{stamp}.csv"'},
    )
