"""Telling the routing engine to drop an attempt whose end is already committed."""

from __future__ import annotations

import logging

from dialback.observability.events import Events
from dialback.routing.transport import RoutingTransport

log = logging.getLogger("dialback.routing")


async def announce_cancel(
    transport: RoutingTransport, events: Events, callback_id: str, attempt: int
) -> bool:
    """Publish the ``cancel`` entry of an attempt; False when it could not be published (counted
    in CB_SUBMIT_FAILED and logged: the change is committed and a late outcome for the attempt
    is ignored)."""
    try:
        await transport.publish_cancel(callback_id, attempt)
    except Exception as exc:
        log.warning("could not announce the end of attempt %d: %s", attempt, exc)
        events.cancel_notify_failed()
        return False
    return True
