"""The client address of a request: the peer, or the first untrusted hop of X-Forwarded-For
when the peer is a trusted proxy (``DIALBACK_TRUSTED_PROXIES``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.requests import HTTPConnection

from dialback.kit.addresses import Network as _Network


def _trusted(address: str, proxies: Iterable[_Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(conn: HTTPConnection, proxies: tuple[_Network, ...] = ()) -> str:
    """Where the request came from, as the audit log and the brute-force limits see it."""
    peer = conn.client.host if conn.client is not None else ""
    if not proxies or not _trusted(peer, proxies):
        return peer or "unknown"
    forwarded = conn.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    # Right to left: the nearest hop that is not one of ours is the client.
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:64]
    return peer or "unknown"
