"""How the public and admin APIs show call-in requests and groups."""

from __future__ import annotations

from typing import Any

from dialback.callins.repository import CallInGroup
from dialback.callins.service import CallInRequest, RequestPage
from dialback.kit.timefmt import iso, utc_iso


def created_out(req: CallInRequest) -> dict[str, Any]:
    """``data`` of the public create: the number to dial, the code and when both expire."""
    return {
        "id": req.id,
        "toPhoneNumber": req.to_phone_number,
        "groupName": req.group_name,
        "expirationTime": int(req.expires_at),
        # A JSON number, as the SDKs parse it (new codes never start with 0).
        "accessCode": None if req.access_code is None else int(req.access_code),
        "fromPhoneNumber": req.from_phone_number,
        "callbackServiceId": req.callback_service_id,
    }


def request_out(req: CallInRequest, now: float) -> dict[str, Any]:
    """A stored request as the admin API shows it, its state as of ``now``."""
    if req.matched_at is not None:
        state = "MATCHED"
    elif req.expires_at <= now:
        state = "EXPIRED"
    else:
        state = "PENDING"
    return {
        "id": req.id,
        "tenant": req.tenant_name,
        "groupName": req.group_name,
        "toPhoneNumber": req.to_phone_number,
        "fromPhoneNumber": req.from_phone_number,
        "accessCode": req.access_code,
        "userData": req.user_data,
        "callbackServiceId": req.callback_service_id,
        "state": state,
        "createdAt": iso(req.created_at),
        "expirationTime": int(req.expires_at),
        "matchedAt": iso(req.matched_at),
        # A stored value that cannot be rendered (shown null above): its raw text.
        **({"unreadable": {"userData": req.user_data_raw}} if req.user_data_raw else {}),
    }


def page_out(page: RequestPage) -> dict[str, Any]:
    """A page of requests with its paging."""
    items = [request_out(r, page.as_of) for r in page.items]
    return {"items": items, "total": page.total, "limit": page.limit, "offset": page.offset}


def group_out(group: CallInGroup, tenant_name: str) -> dict[str, Any]:
    """A group as the admin API shows it."""
    return {
        "id": group.id,
        "tenant": tenant_name,
        "name": group.name,
        "config": group.config.dump(),
        "createdAt": utc_iso(group.created_at),
        "updatedAt": utc_iso(group.updated_at),
    }


def deleted_out(name: str) -> dict[str, Any]:
    """The answer to a group delete."""
    return {"name": name, "deleted": True}
