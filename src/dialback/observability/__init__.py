"""Observability: metrics, events, health, event-loop lag and logging.

``catalogue`` lists every metric (docs/metrics.md is generated from it by ``docs``),
``registry`` renders them, ``metrics`` holds one typed family per catalogue entry, ``events``
is the one writer of metrics outside it (``http_metrics``, the batched request observer,
aside), ``health`` checks the dependencies, ``loop_lag`` samples event-loop lag, ``logging``
writes the JSON log lines and ``admin_endpoints`` serves the log-level admin routes.
"""
