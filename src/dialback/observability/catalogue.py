"""The metric catalogue: the one list of every metric dialback exposes.

The exposition is built from it, docs/metrics.md is generated from it, and tests check both
against it. Names that GES defines are kept exactly, so GES rules and dashboards work.

Exposition types: GES counters whose names lack ``_total`` (``ges_callbacks_created``, the
upper-case alarm counters) are exposed as ``untyped``. Prometheus ingests them like any
sample, ``increase()``/``rate()`` work on them, and ``promtool check metrics`` accepts them;
typing them ``counter`` without the suffix would fail that lint. Names ending in ``_total``
are exposed as ``counter``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dialback.observability.registry import Exposition, Kind

Category = Literal["business", "performance", "health", "alarm", "threshold"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
CYCLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class MetricDef:
    """One metric: what it is called, counts, is labelled by, and how to query it."""

    name: str
    kind: Kind
    exposition: Exposition
    category: Category
    help: str
    labels: tuple[str, ...] = ()
    ges: bool = True
    buckets: tuple[float, ...] = ()
    query: str = ""
    note: str = ""


def _alarm(
    name: str,
    help: str,
    unit: str,
    labels: tuple[str, ...] = (),
    query: str = "",
    note: str = "",
) -> MetricDef:
    """An alarm counter; ``unit`` says what one increment is, so a threshold reads right."""
    return MetricDef(
        name,
        "counter",
        "untyped",
        "alarm",
        f"{help} Counts one per {unit}.",
        labels,
        query=query or f"increase({name}[5m])",
        note=note,
    )


def _health(name: str, help: str, ges: bool = True) -> MetricDef:
    return MetricDef(
        name, "gauge", "gauge", "health", help + " (1 = down, 0 = up)", ges=ges, query=f"{name} > 0"
    )


def _tolerance(name: str, help: str) -> MetricDef:
    return MetricDef(name, "gauge", "gauge", "threshold", help, query=name)


CATALOGUE: tuple[MetricDef, ...] = (
    # Business logic
    MetricDef(
        "ges_callbacks_created",
        "counter",
        "untyped",
        "business",
        "Callbacks successfully created (committed).",
        ("tenant", "service"),
        query='sum(increase(ges_callbacks_created{tenant=~"$Tenant"}[$__range]))',
    ),
    MetricDef(
        "ges_callin_created",
        "counter",
        "untyped",
        "business",
        "Click-To-Call-In requests handled.",
        ("tenant",),
        query="sum(rate(ges_callin_created[5m])) * 60",
    ),
    MetricDef(
        "ges_push_notifications_sent",
        "counter",
        "untyped",
        "business",
        "Push notifications sent, by result (dialback sends none yet: stays 0).",
        ("tenant", "result"),
        query="sum by (result) (increase(ges_push_notifications_sent[1h]))",
    ),
    MetricDef(
        "ges_monitor_size",
        "gauge",
        "gauge",
        "business",
        "Callbacks the callback monitor is watching, by state "
        "(scheduled, due, queued, routing, processing).",
        ("type",),
        query="sum by (type, pod) (ges_monitor_size)",
    ),
    MetricDef(
        "ges_http_requests_total",
        "counter",
        "counter",
        "business",
        "API requests, by tenant and route template.",
        ("tenant", "path"),
        query="sum by (path) (rate(ges_http_requests_total[5m])) * 60",
    ),
    MetricDef(
        "ges_http_failed_requests_total",
        "counter",
        "counter",
        "business",
        "API requests answered 4xx or 5xx, by status code, route template and tenant.",
        ("httpCode", "path", "tenant"),
        query="sum by (path, httpCode) (rate(ges_http_failed_requests_total[5m])) * 60",
    ),
    MetricDef(
        "ges_http_request_duration_seconds",
        "histogram",
        "histogram",
        "performance",
        "API request duration, by method, route template and status code.",
        ("method", "route", "code"),
        buckets=LATENCY_BUCKETS,
        query="histogram_quantile(0.99, sum by (le, route) "
        "(rate(ges_http_request_duration_seconds_bucket[5m])))",
    ),
    # Performance
    MetricDef(
        "ges_process_cpu_seconds_total",
        "counter",
        "counter",
        "performance",
        "CPU seconds used by the process (user + system).",
        query="irate(ges_process_cpu_seconds_total[1m])",
    ),
    MetricDef(
        "ges_process_resident_memory_bytes",
        "gauge",
        "gauge",
        "performance",
        "Resident set size of the process.",
        query="ges_process_resident_memory_bytes",
    ),
    MetricDef(
        "ges_process_start_time_seconds",
        "gauge",
        "gauge",
        "performance",
        "Process start time (epoch seconds).",
        query="time() - ges_process_start_time_seconds",
    ),
    MetricDef(
        "ges_process_open_fds",
        "gauge",
        "gauge",
        "performance",
        "Open file descriptors.",
        ges=False,
        query="ges_process_open_fds / ges_process_max_fds",
    ),
    MetricDef(
        "ges_process_max_fds",
        "gauge",
        "gauge",
        "performance",
        "File descriptor limit.",
        ges=False,
        query="ges_process_max_fds",
    ),
    MetricDef(
        "ges_data_dir_used_bytes",
        "gauge",
        "gauge",
        "performance",
        "Bytes used by files under the data directory (the embedded store lives there).",
        ges=False,
        query="ges_data_dir_used_bytes",
    ),
    MetricDef(
        "ges_data_dir_free_bytes",
        "gauge",
        "gauge",
        "performance",
        "Free bytes on the file system holding the data directory.",
        ges=False,
        query="ges_data_dir_free_bytes",
    ),
    MetricDef(
        "ges_nodejs_eventloop_lag_seconds",
        "gauge",
        "gauge",
        "performance",
        "Event-loop lag: how late the last timer fired on the asyncio loop (GES's name kept).",
        query="max_over_time(ges_nodejs_eventloop_lag_seconds[5m])",
    ),
    MetricDef(
        "application_ccecp_nodejs_eventloop_lag_seconds",
        "gauge",
        "gauge",
        "performance",
        "The same event-loop lag under the name GES's shipped GES-NODE-JS-DELAY-WARNING rule "
        "queries, so that rule works unchanged.",
        query="application_ccecp_nodejs_eventloop_lag_seconds > 0.005",
        note="alias of ges_nodejs_eventloop_lag_seconds",
    ),
    MetricDef(
        "ges_eventloop_lag_seconds",
        "histogram",
        "histogram",
        "performance",
        "Distribution of event-loop lag samples.",
        ges=False,
        buckets=LAG_BUCKETS,
        query="histogram_quantile(0.99, rate(ges_eventloop_lag_seconds_bucket[5m]))",
    ),
    MetricDef(
        "ges_nodejs_heap_space_size_used_bytes",
        "gauge",
        "gauge",
        "performance",
        'Memory in use by the process (RSS), labelled space="process" (GES\'s V8 heap name kept).',
        ("space",),
        query="sum by (pod) (ges_nodejs_heap_space_size_used_bytes) / "
        "sum by (pod) (ges_nodejs_heap_space_size_available_bytes)",
    ),
    MetricDef(
        "ges_nodejs_heap_space_size_available_bytes",
        "gauge",
        "gauge",
        "performance",
        "Memory the process may use: the cgroup memory limit, or physical memory without one.",
        ("space",),
        query="ges_nodejs_heap_space_size_available_bytes",
    ),
    # Health gauges (only for configured dependencies)
    _health("REDIS_CONNECTION", "dialback's own Redis"),
    _health("ORS_REDIS_STATUS", "The routing Redis (dispatch and outcome streams)"),
    _health("GWS_AUTH_STATUS", "The OAuth2/OIDC provider"),
    _health("GWS_ENV_STATUS", "The external tenant directory"),
    _health("GWS_CONFIG_STATUS", "The external service-configuration source"),
    _health("ALL_URS_DOWN", "No routing-engine consumer read the dispatch stream recently"),
    _health("POSTGRES_STATUS", "The PostgreSQL store", ges=False),
    MetricDef(
        "GES_HEALTH",
        "gauge",
        "gauge",
        "health",
        "Dependencies down among the routing Redis, PostgreSQL and the GWS-style services "
        "(0 = healthy). dialback's own Redis does not count, as in GES.",
        query="GES_HEALTH > 0",
    ),
    MetricDef(
        "ges_dependency_last_check_timestamp_seconds",
        "gauge",
        "gauge",
        "health",
        "When the health checker last finished checking a dependency (epoch seconds).",
        ("dependency",),
        ges=False,
        query="time() - ges_dependency_last_check_timestamp_seconds > 60",
    ),
    MetricDef(
        "ges_dependency_check_duration_seconds",
        "gauge",
        "gauge",
        "health",
        "How long the last check of a dependency took.",
        ("dependency",),
        ges=False,
        query="max by (dependency) (ges_dependency_check_duration_seconds)",
    ),
    # Alarms (counters that exist at 0 from start). Each help says what one increment is.
    _alarm(
        "RBAC_CREATE_VQ_PROXY_ERROR",
        "Provisioning the routing objects (stream, consumer groups) failed.",
        "failed provisioning attempt: the monitor retries after 1 s, 2 s, 4 s ... at most "
        "60 s apart (a lasting failure counts about 6 in its first 30 s, then 1 a minute, so "
        "`increase(...[10m]) > 5` fires within ~30 s and holds while it lasts), and each "
        "service created or updated through the admin API while provisioning fails counts 1",
        query="increase(RBAC_CREATE_VQ_PROXY_ERROR[10m]) > 5",
    ),
    _alarm(
        "DNS_FAILURE",
        "A dependency's host name could not be resolved (the name GES's rule queries).",
        "dependency check that failed to resolve its host (each unresolvable dependency "
        "about every 15-20 s)",
        note="Same count as GES_DNS_FAILURE",
    ),
    _alarm(
        "GES_DNS_FAILURE",
        "A dependency's host name could not be resolved (the name GES's documentation uses).",
        "dependency check that failed to resolve its host (each unresolvable dependency "
        "about every 15-20 s)",
        note="Same count as DNS_FAILURE",
    ),
    _alarm(
        "UNCAUGHT_EXCEPTION",
        "An unexpected exception reached a top-level boundary (request, loop, task).",
        "exception: a request answered 500, a failed monitor or health cycle (cycles back "
        "off up to 5 s), a dead loop",
    ),
    _alarm(
        "INVALID_CONTENT_LENGTH",
        "Requests refused for an oversized body or a malformed Content-Length.",
        "refused request",
    ),
    _alarm("LOGGING_FAILURE", "Log lines that could not be written.", "lost log line"),
    _alarm(
        "MONITOR_LAGGING_BEHIND",
        "Callbacks dispatched later than the lagging threshold after their due time.",
        "late callback, when it is dispatched",
        query="increase(MONITOR_LAGGING_BEHIND[1m]) > 100",
    ),
    _alarm(
        "CB_TTL_LIMIT_REACHED",
        "Bookings (callbacks, Click-To-Call-In requests) refused by a tenant's per-window limit.",
        "refused booking",
        ("tenant",),
    ),
    _alarm(
        "CB_ENQUEUE_LIMIT_REACHED",
        "Bookings refused by a per-phone-number limit.",
        "refused booking",
        ("tenant",),
    ),
    _alarm(
        "CB_SUBMIT_FAILED",
        "Callbacks that could not be published to the routing stream.",
        "callback attempt whose publish failed, once however often the pod retries it until "
        "it is published (a 5-minute routing outage counts the callbacks the pod tried to "
        "dispatch, not its retries; due callbacks it did not reach yet show in "
        "`ges_due_backlog`), and per cancel that could not be announced to the routing engine",
    ),
    _alarm(
        "CB_PARKED",
        "Due callbacks set aside because their stored row cannot be read or published (a "
        "poison row: e.g. an integer beyond 64 bits in userData written by an older version "
        "or by hand); the monitor skips them and the admin API lists them "
        "(`GET /admin/v1/callbacks?parked=true`).",
        "parked callback",
        query="increase(CB_PARKED[10m])",
    ),
    _alarm(
        "GWS_SERVER_ERROR",
        "Server or connection errors from a GWS-style HTTP dependency or the OIDC provider.",
        "failed health check of that dependency (about every 15-20 s while it fails), and per "
        "request to the OIDC provider that failed to connect or answered 5xx",
    ),
    _alarm(
        "GWS_INCORRECT_CLIENT_CREDENTIALS",
        "dialback's credentials were rejected: by a GWS-style HTTP dependency, or by the OIDC "
        "provider's token endpoint at a sign-in.",
        "health check answered 401/403 (about every 15-20 s while it lasts), and per sign-in "
        "whose token request the OIDC provider rejected (401 or invalid_client)",
    ),
    _alarm(
        "NEXUS_ACCESS_FAILURE",
        "Failures reaching the digital channel (Nexus); dialback has no such "
        "integration yet, so it stays 0.",
        "failed Nexus request",
        query="increase(NEXUS_ACCESS_FAILURE[30m]) > 60",
    ),
    # Thresholds
    _tolerance(
        "http_400_tolerance", "HTTP 400s per pod in 2 minutes above which GES_HTTP_400_POD fires."
    ),
    _tolerance(
        "http_401_tolerance", "HTTP 401s per pod in 2 minutes above which GES_HTTP_401_POD fires."
    ),
    _tolerance(
        "http_404_tolerance", "HTTP 404s per pod in 2 minutes above which GES_HTTP_404_POD fires."
    ),
    _tolerance(
        "http_500_tolerance", "HTTP 500s per pod in 2 minutes above which GES_HTTP_500 fires."
    ),
    _tolerance(
        "rbac_create_vq_proxy_error_tolerance",
        "RBAC_CREATE_VQ_PROXY_ERROR increase in 10 minutes above which its alert fires.",
    ),
    _tolerance(
        "invalid_content_length_tolerance",
        "INVALID_CONTENT_LENGTH increase in 2 minutes above which its alert fires.",
    ),
    # Beyond GES
    MetricDef(
        "ges_dispatch_lateness_seconds",
        "histogram",
        "histogram",
        "business",
        "How late after its due time a callback reached the routing stream.",
        ges=False,
        buckets=LATENESS_BUCKETS,
        query="histogram_quantile(0.99, rate(ges_dispatch_lateness_seconds_bucket[5m]))",
    ),
    MetricDef(
        "ges_due_backlog",
        "gauge",
        "gauge",
        "business",
        "Callbacks due but not yet dispatched (parked ones excepted: ges_parked_callbacks).",
        ges=False,
        query="max(ges_due_backlog)",
    ),
    MetricDef(
        "ges_due_oldest_age_seconds",
        "gauge",
        "gauge",
        "business",
        "Age of the oldest due, undispatched callback, parked ones excepted (0 when none).",
        ges=False,
        query="max(ges_due_oldest_age_seconds)",
    ),
    MetricDef(
        "ges_parked_callbacks",
        "gauge",
        "gauge",
        "business",
        "Open callbacks the monitor parked (CB_PARKED) and an operator has not resolved yet.",
        ges=False,
        query="max(ges_parked_callbacks)",
    ),
    MetricDef(
        "ges_monitor_dispatch_stalled_seconds",
        "gauge",
        "gauge",
        "business",
        "How long every dispatch cycle of this pod has failed (0 while the last one succeeded).",
        ges=False,
        query="max by (pod) (ges_monitor_dispatch_stalled_seconds)",
    ),
    MetricDef(
        "ges_dispatch_outcomes_total",
        "counter",
        "counter",
        "business",
        "Ended attempts by reason (answered, no-answer, busy, failed, cancelled, retry).",
        ("reason",),
        ges=False,
        query="sum by (reason) (rate(ges_dispatch_outcomes_total[5m])) * 60",
    ),
    MetricDef(
        "ges_http_edge_refusals_total",
        "counter",
        "counter",
        "performance",
        "Connections the HTTP edge closed before the app answered, by listener (public,"
        " internal) and reason: header_timeout and body_timeout (408, slowloris),"
        " header_too_large (431).",
        ("listener", "reason"),
        ges=False,
        query="sum by (listener, reason) (increase(ges_http_edge_refusals_total[5m]))",
    ),
    MetricDef(
        "ges_callbacks_create_replayed_total",
        "counter",
        "counter",
        "business",
        "Creates answered with the callback an earlier create with the same Idempotency-Key "
        "booked (a client's retry: nothing booked again).",
        ("tenant",),
        ges=False,
        query="sum by (tenant) (rate(ges_callbacks_create_replayed_total[5m])) * 60",
    ),
    MetricDef(
        "ges_monitor_cycle_duration_seconds",
        "histogram",
        "histogram",
        "business",
        "Duration of a callback-monitor dispatch cycle.",
        ges=False,
        buckets=CYCLE_BUCKETS,
        query="histogram_quantile(0.99, rate(ges_monitor_cycle_duration_seconds_bucket[5m]))",
    ),
    MetricDef(
        "ges_monitor_last_run_timestamp_seconds",
        "gauge",
        "gauge",
        "business",
        "When the callback monitor last finished a cycle (epoch seconds).",
        ges=False,
        query="time() - ges_monitor_last_run_timestamp_seconds",
    ),
    MetricDef(
        "ges_build_info",
        "gauge",
        "gauge",
        "performance",
        "Always 1; labels carry the dialback and Python versions.",
        ("version", "python"),
        ges=False,
        query="ges_build_info",
    ),
    MetricDef(
        "ges_deadline_actions_total",
        "counter",
        "counter",
        "business",
        "Routed attempts acted on because their state outlived its deadline, by state (queued, "
        "routing, processing) and action: republished (the same attempt published again), "
        "retried (ended `timeout`, retried as a new attempt), completed (ended `timeout`).",
        ("state", "action"),
        ges=False,
        query="sum by (state, action) (increase(ges_deadline_actions_total[15m]))",
    ),
    MetricDef(
        "ges_routing_stream_losses_total",
        "counter",
        "counter",
        "health",
        "Times this replica found the routing Redis without the streams, consumer groups or "
        "marker it had provisioned (restarted empty, flushed) and provisioned them again; "
        "the attempts whose entries were lost are republished by the QUEUED deadline.",
        ges=False,
        query="sum(increase(ges_routing_stream_losses_total[10m]))",
    ),
    MetricDef(
        "ges_retention_purged_total",
        "counter",
        "counter",
        "business",
        "Personal data removed by retention: rows (callbacks, callback_events, callin_requests),"
        " routing-stream entries (stream_entries), dead outcome-group consumers"
        " (stream_consumers) and audit log entries past DIALBACK_RETENTION_AUDIT_DAYS (audit_entries).",
        ("kind",),
        ges=False,
        query="sum by (kind) (increase(ges_retention_purged_total[1h]))",
    ),
    MetricDef(
        "ges_retention_last_sweep_timestamp_seconds",
        "gauge",
        "gauge",
        "business",
        "When the retention sweeper last finished a sweep (epoch seconds; 0 before the first).",
        ges=False,
        query="time() - ges_retention_last_sweep_timestamp_seconds",
    ),
    MetricDef(
        "ges_erasures_total",
        "counter",
        "counter",
        "business",
        "Erasures done through the admin API (kind: callback, phone_number); each is audited.",
        ("kind",),
        ges=False,
        query="sum by (kind) (increase(ges_erasures_total[1d]))",
    ),
    MetricDef(
        "ges_audit_entries_total",
        "counter",
        "counter",
        "business",
        "Audit log entries written (outcome: ok, denied, failed): operators' state-changing "
        "actions, refused attempts and failed sign-ins.",
        ("outcome",),
        ges=False,
        query="sum by (outcome) (increase(ges_audit_entries_total[1h]))",
    ),
    MetricDef(
        "ges_audit_write_failures_total",
        "counter",
        "counter",
        "alarm",
        "Audit entries that could not be stored (the action itself had completed); each is "
        "logged at error with its content.",
        (),
        ges=False,
        query="increase(ges_audit_write_failures_total[15m])",
    ),
    MetricDef(
        "ges_auth_failures_total",
        "counter",
        "counter",
        "business",
        "Failed authentications, by kind (api_key: a missing or unknown x-api-key; "
        "admin_token: a bad admin bearer token; login: a failed operator sign-in).",
        ("kind",),
        ges=False,
        query="sum by (kind) (increase(ges_auth_failures_total[5m]))",
    ),
    MetricDef(
        "ges_auth_rate_limited_total",
        "counter",
        "counter",
        "business",
        "Authentication attempts refused with 429 because their client address failed too "
        "often in the window (the brute-force limits), by kind (api_key, admin_token, login).",
        ("kind",),
        ges=False,
        query="sum by (kind) (increase(ges_auth_rate_limited_total[5m]))",
    ),
)

RETENTION_KINDS = (
    "callbacks",
    "callback_events",
    "callin_requests",
    "stream_entries",
    "stream_consumers",
    "audit_entries",
)
ERASURE_KINDS = ("callback", "phone_number")
AUDIT_OUTCOMES = ("ok", "denied", "failed")
AUTH_KINDS = ("api_key", "admin_token", "login")  # identity/bruteforce.KINDS

BY_NAME: dict[str, MetricDef] = {m.name: m for m in CATALOGUE}
