"""Wire format of the dispatch and outcome streams (documented in docs/routing.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dialback.kit.context import CORR_ID_RE

OutcomeEventName = Literal["ROUTING", "PROCESSING", "COMPLETED"]
OUTCOME_EVENTS = ("ROUTING", "PROCESSING", "COMPLETED")
COMPLETION_REASONS = ("answered", "no-answer", "busy", "failed", "cancelled")
# The GES booking fields a dispatch carries as given at create ("" when absent), in this order.
DISPATCH_BOOKING_FIELDS = (
    "routePoint",
    "surveyRP",
    "inboundVQ",
    "channel",
    "offerTiming",
    "cbOriginationIxnId",
    "offerThreshold",
)


@dataclass(frozen=True)
class Dispatch:
    """One callback attempt released to the routing engine (``republish`` > 0: the same
    attempt published again because the routing engine did not acknowledge it)."""

    id: str
    attempt: int
    fields: dict[str, str]
    republish: int = 0


@dataclass(frozen=True)
class Outcome:
    """One event reported by the routing engine about a callback attempt."""

    id: str
    attempt: int
    event: str
    reason: str | None
    at: float
    corr_id: str | None = None  # the routing engine's own corrId for the step, when it sent one

    @classmethod
    def parse(cls, fields: dict[str, str]) -> Outcome:
        """Validate a raw stream entry; raise ValueError naming the bad field."""
        cid = fields.get("id", "")
        if not cid or len(cid) > 64:
            raise ValueError("id missing or too long")
        try:
            attempt = int(fields.get("attempt", ""))
        except ValueError as exc:
            raise ValueError("attempt is not an integer") from exc
        event = fields.get("event", "")
        if event not in OUTCOME_EVENTS:
            raise ValueError(f"event {event!r} is not one of {OUTCOME_EVENTS}")
        reason = fields.get("reason") or None
        if event == "COMPLETED" and reason not in COMPLETION_REASONS:
            raise ValueError(f"reason {reason!r} is not one of {COMPLETION_REASONS}")
        try:
            at = float(fields.get("at", "0") or 0)
        except ValueError as exc:
            raise ValueError("at is not a number") from exc
        # Optional: one that is not a corrId is left out (the outcome still counts; the
        # monitor's own corrId for the read stands in).
        corr = fields.get("corrId") or None
        if corr is not None and not CORR_ID_RE.match(corr):
            corr = None
        return cls(cid, attempt, event, reason, at, corr)

    def to_fields(self) -> dict[str, str]:
        """Serialise for a stream entry."""
        return {
            "id": self.id,
            "attempt": str(self.attempt),
            "event": self.event,
            "reason": self.reason or "",
            "at": f"{self.at:.3f}",
            **({"corrId": self.corr_id} if self.corr_id else {}),
        }
