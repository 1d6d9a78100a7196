"""What the Health page's cells show for each state of a dependency, the roll-up and the
routing engine (the page and /ui/health.json share them)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from dialback.observability.health_view import DependencyState, HealthSnapshot
from dialback.ui.pages.health import cells


def _dep(name: str, status: str, **kw: object) -> DependencyState:
    values: dict[str, object] = {
        "gauge": None,
        "gauge_value": None,
        "required": True,
        "in_ges_health": False,
        "last_check": None,
        "check_seconds": None,
        "error": "",
    }
    values.update(kw)
    return DependencyState(name=name, status=status, **values)  # type: ignore[arg-type]


def _snapshot(**kw: object) -> HealthSnapshot:
    values: dict[str, object] = {
        "at": 1_767_225_600.0,  # 2026-01-01T00:00:00Z
        "ready": False,
        "ges_health": 2,
        "dependencies": (
            _dep("postgres", "unknown", gauge="POSTGRES_STATUS"),
            _dep(
                "routing_redis",
                "down",
                gauge="ORS_REDIS_STATUS",
                gauge_value=1,
                in_ges_health=True,
                last_check=1_767_225_590.0,
                check_seconds=0.0123,
                error="Connection refused",
            ),
        ),
        "due_backlog": 12,
        "oldest_due_age": 3725.4,
        "parked": None,
        "monitor_size": {"scheduled": 3, "queued": 0, "routing": None, "processing": 1},
        "monitor_last_run": None,
        "routing_engine_watched": True,
        "consumers_seen": None,
        "consumers_seen_at": None,
        "consumer_window_seconds": 30.0,
    }
    values.update(kw)
    return HealthSnapshot(**values)  # type: ignore[arg-type]


def test_cells_say_each_state_in_text_and_colour() -> None:
    c = cells(_snapshot(), ZoneInfo("Europe/Paris"))
    assert c["ges-health"] == {"text": "2: 2 dependencies down", "state": "down"}
    assert c["ready"]["state"] == "down"
    assert c["dep-postgres-status"] == {"text": "unknown", "state": "unknown"}
    assert c["dep-postgres-gauge"] == {"text": "—"}  # not exported before the first check
    assert c["dep-postgres-checked"] == {"text": "—", "ts": None}
    assert c["dep-routing_redis-status"] == {"text": "down", "state": "down"}
    assert c["dep-routing_redis-gauge"] == {"text": "1"}
    assert c["dep-routing_redis-took"] == {"text": "12 ms"}
    assert c["dep-routing_redis-error"] == {"text": "Connection refused"}
    assert c["dep-routing_redis-checked"] == {
        "text": "2026-01-01 00:59:50",  # the operator's zone
        "ts": 1_767_225_590.0,
        "utc": "2025-12-31T23:59:50Z",
    }
    assert c["due-backlog"] == {"text": "12"} and c["parked"] == {"text": "—"}
    assert c["oldest-due-age"] == {"text": "1 h 2 min"}
    assert c["size-routing"] == {"text": "—"} and c["size-processing"] == {"text": "1"}
    assert c["consumers"] == {"text": "not read yet"}


def test_cells_of_a_healthy_replica_without_a_routing_engine() -> None:
    c = cells(
        _snapshot(
            ready=True,
            ges_health=0,
            routing_engine_watched=False,
            dependencies=(_dep("database", "up", last_check=1_767_225_590.0),),
        ),
        ZoneInfo("UTC"),
    )
    assert c["ges-health"] == {"text": "0: healthy", "state": "up"}
    assert c["ready"] == {"text": "ready", "state": "up"}
    assert c["dep-database-error"] == {"text": "—"}
    assert c["consumers"] == {"text": "not watched (no routing engine is expected)"}
    assert c["as-of"]["utc"] == "2026-01-01T00:00:00Z"
