"""The bundled routing engine keeps the dialer contract of docs/routing.md: a republished
attempt it holds is not taken twice, one it finished is answered with its outcome again."""

from __future__ import annotations

import asyncio

from dialback.routing.messages import Dispatch
from dialback.routing.simulator import RoutingSimulator
from dialback.routing.transport import MemoryTransport
from tests.support.stack import wait_for


def dispatch(cid: str, republish: int) -> Dispatch:
    fields = {
        "type": "callback",
        "id": cid,
        "attempt": "1",
        "priority": "0",
        "republish": str(republish),
    }
    return Dispatch(cid, 1, fields, republish)


async def outcomes(transport: MemoryTransport) -> list[tuple[str, str, str]]:
    got = await transport.read_outcomes("test", 1000, 50)
    return [(f["id"], f["event"], f["reason"]) for _i, f in got]


async def test_republishes_are_deduplicated_or_answered_with_the_outcome() -> None:
    transport = MemoryTransport()
    sim = RoutingSimulator(
        transport, agents=2, handle_seconds=0.4, ring_seconds=0.01, answer_probability=1.0
    )
    sim.start()
    try:
        assert await transport.publish([dispatch("a", 0)]) == [True]
        # Republished twice while the agent has it: still one call.
        await asyncio.sleep(0.1)
        assert await transport.publish([dispatch("a", 1), dispatch("a", 2)]) == [True, True]
        seen: list[tuple[str, str, str]] = []

        async def completed() -> bool:
            seen.extend(await outcomes(transport))
            return ("a", "COMPLETED", "answered") in seen

        await wait_for(completed, timeout=5)
        assert seen == [
            ("a", "ROUTING", ""),
            ("a", "PROCESSING", ""),
            ("a", "COMPLETED", "answered"),
        ]
        assert sim.handled == 1
        # Republished after it finished (its outcome was lost): the outcome again, no call.
        await transport.publish([dispatch("a", 3)])
        again = await wait_for(lambda: outcomes(transport), timeout=5)
        assert again == [("a", "COMPLETED", "answered")]
        await asyncio.sleep(0.5)
        assert sim.handled == 1
        # The republish number makes each publish of the same attempt once-only on its own.
        assert await transport.publish([dispatch("a", 3)]) == [False]
    finally:
        await sim.stop()
