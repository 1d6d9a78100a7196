"""The Callback UI's list of callbacks: filters, pages of 250 (GES's page size), counts per state,
bulk cancel and the CSV export of the filtered set."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from dialback.callbacks import repository as callbacks_repo
from dialback.callbacks import views
from dialback.callbacks.query import PHONE_MAX, read_callback_query
from dialback.callbacks.repository import CallbackFilter
from dialback.callbacks.service import BULK_CANCEL_MAX, STATES
from dialback.identity.roles import Permission, Principal
from dialback.kit.errors import BadRequest
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
_PARKED_WORDS = {"only": True, "none": False}
"""The list's ``parked`` values and what each asks (empty: any): only the parked ones, none."""
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


_FORM_NAMES = {
    "tenant": "tenant",
    "service": "service",
    "state": "state",
    "phoneNumber": "phone",
    "createdFrom": "created_from",
    "createdTo": "created_to",
    "dueFrom": "due_from",
    "dueTo": "due_to",
    "parked": "parked",
}
"""The list's form field of each filter (query.FILTERS)."""


def parse_list_query(params: Mapping[str, str], zone: ZoneInfo) -> ListQuery:
    """Read the list's filters (through the admin API's reader, times in the operator's zone),
    sort and page; a problem goes to ``errors`` under its field, named by its label."""
    values = {k: params.get(k, "").strip()[:200] for k in FILTER_FIELDS}
    found, problems = read_callback_query(
        values,
        zone=zone,
        names=_FORM_NAMES,
        labels={f: LABELS[name].lower() for f, name in _FORM_NAMES.items()},
        parked=_PARKED_WORDS,
    )
    q = ListQuery(values, tenant=found.tenant, where=found.where)
    for f, text in problems.items():
        q.errors[_FORM_NAMES[f]] = f"{LABELS[_FORM_NAMES[f]]}: {text}"
    sort = params.get("sort", "")
    if sort not in SORTS:
        q.errors["sort"] = "Sort: use due or -due (or none: newest created first)"
        sort = ""
    q.sort = sort
    page = params.get("page", "1") or "1"
    if not page.isdigit() or not 1 <= int(page) <= MAX_PAGE:
        q.errors["page"] = f"Page: a whole number from 1 to {MAX_PAGE}"
    else:
        q.page = int(page)
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
