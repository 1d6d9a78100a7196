"""The JSON shapes of callbacks: the GES ``Callback`` view and the admin list, detail and
history (the services return rows and dataclasses, the routes render them here)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any

from dialback.callbacks.service import (
    EWT_NO_AGENTS,
    EWT_NO_HISTORY,
    Availability,
    BulkCancelResult,
    CallbackDetail,
    CallbackPage,
    CallbackStatus,
    ExportBatch,
    QueueStatus,
    WaitEstimate,
)
from dialback.kit.phone import mask
from dialback.kit.timefmt import iso, local_iso, utc_iso
from dialback.routing.messages import DISPATCH_BOOKING_FIELDS


def _params(row: Any) -> dict[str, Any]:
    # A row of an older version or written by hand may hold anything here.
    return row.params if isinstance(row.params, dict) else {}


def booking_fields(row: Any) -> dict[str, Any]:
    """The GES booking fields as given at create (null when absent)."""
    params = _params(row)
    return {name: params.get(name) for name in DISPATCH_BOOKING_FIELDS}


def push_targets(row: Any) -> list[dict[str, str]]:
    """Where push notifications are to go (kept; not delivered yet)."""
    params = _params(row)
    if "pushTargets" in params:
        return list(params["pushTargets"])
    if params.get("pushChannel") and params.get("pushTarget"):  # stored before pushTargets
        return [{"channel": params["pushChannel"], "target": params["pushTarget"]}]
    return []


def callback(status: CallbackStatus) -> dict[str, Any]:
    """The GES ``Callback`` view of one callback."""
    row = status.row
    # GES: "by default, the desired time is the current time": an immediate callback's is
    # the time it was booked, which is when it became due.
    desired = row.desired_time if row.desired_time is not None else row.created_at
    data: dict[str, Any] = {
        "id": row.id,
        "serviceName": row.service_name,
        "phoneNumber": row.phone_number,
        "desiredTime": iso(desired),
        "callbackState": row.state,
        "cbOfferType": row.offer_type,
        "priority": row.priority,
        "language": row.language,
        "attempt": row.attempt,
        "createdTime": iso(row.created_at),
        "dueTime": iso(row.due_at),
        **booking_fields(row),
    }
    if row.state == "COMPLETED":
        data["callbackReason"] = row.reason
    if status.position is not None:
        data["positionInQueue"] = status.position
        data["estimatedWaitTime"] = status.wait
    return data


def availability(a: Availability) -> dict[str, Any]:
    """Bookable slots with their remaining and total capacity."""
    slots = [
        {
            "utcTime": utc_iso(s.start),
            "localTime": local_iso(s.start, a.timezone),
            "capacity": s.free,
            "total": s.total,
        }
        for s in a.slots
    ]
    return {"slots": slots, "durationMin": a.slot_minutes, "timezone": a.timezone}


def open_for(seconds: int) -> dict[str, Any]:
    """Seconds until the service closes."""
    return {"openFor": seconds}


def queue_status(q: QueueStatus) -> dict[str, Any]:
    """Whether to offer immediate and scheduled callbacks, with the EWT."""
    return {
        "ewt": q.ewt,
        "offerImmediateCallback": q.offer_immediate,
        "offerScheduledCallback": q.offer_scheduled,
    }


_EWT_MESSAGES = {EWT_NO_HISTORY: "no estimate yet", EWT_NO_AGENTS: "no agents logged in"}


def wait_time(name: str, found: WaitEstimate | None) -> dict[str, Any]:
    """GES's ``EstimatedWaitTime`` of one virtual queue: seconds (-1 when unknown), a message
    and the ``resultCode`` (0 valid, -1 no interactions yet or unknown queue, -2 no agents)."""
    if found is None:
        return {
            "virtualQueue": name,
            "estimatedWaitTime": -1,
            "message": "unknown virtual queue",
            "resultCode": EWT_NO_HISTORY,
        }
    return {
        "virtualQueue": name,
        "estimatedWaitTime": found.seconds,
        "message": _EWT_MESSAGES.get(found.result_code, "ok"),
        "resultCode": found.result_code,
    }


def wait_times(estimates: list[tuple[str, WaitEstimate | None]]) -> list[dict[str, Any]]:
    """EWT per virtual queue, in the order asked."""
    return [wait_time(name, found) for name, found in estimates]


def admin_item(row: Any, tenant_name: str | None) -> dict[str, Any]:
    """One callback as the admin list shows it."""
    return {
        "id": row.id,
        "tenant": tenant_name,
        "serviceName": row.service_name,
        "phoneNumber": row.phone_number,
        "callbackState": row.state,
        "callbackReason": row.reason,
        "desiredTime": iso(row.desired_time),
        "dueTime": iso(row.due_at),
        "createdTime": iso(row.created_at),
        "attempt": row.attempt,
        "priority": row.priority,
        "parked": bool(row.parked),
    }


def admin_page(page: CallbackPage, limit: int, offset: int) -> dict[str, Any]:
    """A page of the admin search."""
    items = [admin_item(r, page.tenant_names.get(r.tenant_id)) for r in page.rows]
    return {
        "items": items,
        "total": page.total,
        "totalExact": page.total_exact,
        "limit": limit,
        "offset": offset,
    }


def history_item(ev: Any) -> dict[str, Any]:
    """One state change of a callback, with the corrId of the request or monitor step that
    made it (null before migration 12)."""
    return {
        "at": utc_iso(ev.at),
        "fromState": ev.from_state,
        "toState": ev.to_state,
        "reason": ev.reason,
        "attempt": ev.attempt,
        "source": ev.source,
        "corrId": ev.corr_id,
    }


def is_creation(ev: Any) -> bool:
    """Whether a history row is the callback's creation (from no state)."""
    return ev.from_state is None


def timeline(d: CallbackDetail) -> list[dict[str, Any]]:
    """State changes and operators' actions in time order: what happened, when, by whom."""
    created = d.row.created_at
    items: list[tuple[float, int, dict[str, Any]]] = [
        (ev.at, -1 if is_creation(ev) else 0, {"kind": _kind(ev), **history_item(ev)})
        for ev in d.history
    ]
    if not any(is_creation(ev) for ev in d.history):
        # Booked before migration 12 (or by a replica of the release before it): no row.
        created_item = {"kind": "created", "at": utc_iso(created), "toState": "SCHEDULED"}
        items.append((created, -1, {**created_item, "corrId": None}))
    items += [
        (
            a.at,
            1,
            {
                "kind": "audit",
                "at": utc_iso(a.at),
                "actor": a.actor,
                "action": a.action,
                "outcome": a.outcome,
                "corrId": a.corr_id,
            },
        )
        for a in d.audit
    ]
    return [item for _, _, item in sorted(items, key=lambda t: (t[0], t[1]))]


def _kind(ev: Any) -> str:
    return "created" if is_creation(ev) else "state"


def admin_detail(d: CallbackDetail, *, user_data: bool = True) -> dict[str, Any]:
    """A callback with its history, and its user data when ``user_data`` (else null, with
    ``userDataHidden``)."""
    row = d.row
    return {
        **admin_item(row, d.tenant_name),
        "cbOfferType": row.offer_type,
        "language": row.language,
        "maxAttempts": row.max_attempts,
        "lastReason": row.last_reason,
        "updatedTime": iso(row.updated_at),
        "completedTime": iso(row.completed_at),
        **booking_fields(row),
        "pushTargets": push_targets(row),
        "userData": row.user_data if user_data else None,
        **({} if user_data else {"userDataHidden": True}),
        "history": [history_item(ev) for ev in d.history],
        "timeline": timeline(d),
        "parkedTime": utc_iso(row.parked.parked_at) if row.parked else None,
        "parkReason": row.parked.reason if row.parked else None,
        # Stored values that cannot be rendered (shown null above): their raw text.
        **({"unreadable": row.unreadable} if row.unreadable else {}),
    }


def bulk_cancel(result: BulkCancelResult) -> dict[str, Any]:
    """What a bulk cancel did: the ids cancelled, and each refused with its state and why."""
    return {
        "cancelled": result.cancelled,
        "refused": [{"id": r.id, "state": r.state, "reason": r.reason} for r in result.refused],
    }


EXPORT_COLUMNS = (
    "id",
    "tenant",
    "serviceName",
    "phoneNumberMasked",
    "callbackState",
    "callbackReason",
    "cbOfferType",
    "desiredTime",
    "dueTime",
    "createdTime",
    "updatedTime",
    "completedTime",
    "attempt",
    "maxAttempts",
    "priority",
    "language",
)
"""The CSV export's columns: no userData, the number masked, times in UTC ISO-8601."""
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str | None) -> str:
    # A spreadsheet runs a cell starting like a formula: such free text gets a leading quote.
    text = value or ""
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_rows(tenant: str, rows: Iterable[Any]) -> list[list[Any]]:
    """A batch of one tenant's callbacks as rows of the CSV export (``EXPORT_COLUMNS``); each
    row holds ``repository.EXPORT_SELECT``'s columns, in its order."""
    tenant_cell = _cell(tenant)
    # Unpacked by position, not read by name: an export writes 50,000 rows a second.
    return [
        [
            cid,
            tenant_cell,
            _cell(service),
            mask(phone),
            state,
            _cell(reason),
            _cell(offer),
            "" if desired is None else utc_iso(desired),
            utc_iso(due),
            utc_iso(created),
            utc_iso(updated),
            "" if completed is None else utc_iso(completed),
            attempt,
            max_attempts,
            priority,
            _cell(language),
        ]
        for (
            cid,
            service,
            phone,
            state,
            reason,
            offer,
            desired,
            due,
            created,
            updated,
            completed,
            attempt,
            max_attempts,
            priority,
            language,
        ) in rows
    ]


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


async def export_csv(batches: AsyncIterator[ExportBatch]) -> AsyncIterator[str]:
    """The CSV export as it streams: the header row, then a chunk per batch."""
    yield _csv_text([list(EXPORT_COLUMNS)])
    async for batch in batches:
        yield _csv_text(export_rows(batch.tenant, batch.rows))
