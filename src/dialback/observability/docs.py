"""Generate docs/metrics.md from the catalogue (``python -m dialback.observability.docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

from dialback.observability.catalogue import CATALOGUE, MetricDef

TITLES = {
    "business": "Business logic",
    "performance": "Performance",
    "health": "Health (dependency gauges)",
    "alarm": "Alarms (counters that exist at 0 from start; the GWS ones with a GWS-style dependency)",
    "threshold": "Thresholds (`_tolerance` gauges)",
}

HEADER = """# Metrics

<!-- Generated from src/dialback/observability/catalogue.py by `make docs`; a test fails when
this file and the catalogue disagree. Do not edit by hand. -->

dialback exposes every metric on the internal port: `GET :3050/metrics`, Prometheus text
format 0.0.4, values live at scrape time (the data directory's size and free space, the
memory limit and the fd limit are read at most every 10 s: they change seldom and cost file reads). Names that GES defines are kept exactly, so GES's
PrometheusRule and dashboards work unchanged; metrics GES lacks carry the `ges_` prefix and
follow Prometheus naming ("new" below).

**Types.** GES counters whose names have no `_total` suffix (`ges_callbacks_created`, the
upper-case alarm counters) are exposed as `untyped`: Prometheus stores and `increase()`s them
exactly like counters, and `promtool check metrics` accepts them, which it would not for a
`counter` without the suffix. The only remaining `promtool` remark is GES's camelCase label
`httpCode`, kept for compatibility (a test pins this).

**Labels** are bounded: `tenant` is the tenant *name*, `service` the service name, `path` and
`route` are the full route template as served
(`/engagement/v3/callbacks/availability/{service_name}`, `/admin/v1/tenants/{tenant}`), also for requests the middleware answers before routing (413,
a bad corrId or Content-Length: the template the router would have chosen for the raw path),
and `unmatched` for a path no route serves; `method` is one of the HTTP methods or `OTHER`. Never a phone number, callback
id or raw path. Requests without an authenticated tenant carry `tenant="undefined"`, as in
GES. When Prometheus's target has its own `tenant` label the series shows `exported_tenant`,
which is what GES's dashboards query.

**Health gauges** read 1 when the dependency is down and 0 when up, refreshed every 15-20 s
(jittered; `DIALBACK_HEALTH_CHECK_MIN_SECONDS`/`_MAX_SECONDS`). A dependency that is not
configured exports no gauge.

**Memory.** `ges_nodejs_heap_space_size_used_bytes` / `_available_bytes` keep GES's V8 heap
names with a Python meaning: used = the process RSS, available = the memory the process may
use (its cgroup limit, or physical memory without one), both labelled `space="process"`.
GES's heap alert `used / available > 0.8` therefore reads "RSS above 80 % of the limit".
"""


def _row(m: MetricDef) -> str:
    labels = ", ".join(f"`{lbl}`" for lbl in m.labels) or "—"
    origin = "GES" if m.ges else "new"
    kind = m.kind if m.kind == m.exposition else f"{m.kind} (exposed `{m.exposition}`)"
    note = f" {m.note}." if m.note else ""
    return f"| `{m.name}` | {kind} | {labels} | {origin} | {m.help}{note} | `{m.query}` |"


def render() -> str:
    """The whole of docs/metrics.md."""
    out = [HEADER]
    for cat, title in TITLES.items():
        out.append(f"\n## {title}\n")
        out.append("| metric | type | labels | origin | meaning | sample query |")
        out.append("|---|---|---|---|---|---|")
        out.extend(_row(m).replace("|`", "| `") for m in CATALOGUE if m.category == cat)
    out.append("")
    return "\n".join(out)


def main() -> int:
    """Write docs/metrics.md (or the path given)."""
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/metrics.md")
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
