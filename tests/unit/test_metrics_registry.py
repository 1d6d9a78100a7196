"""The registry renders valid text format; process metrics work without a data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from testbed.metrics_parse import parse, value

from dialback.observability import registry
from dialback.observability.metrics import Metrics


def test_data_dir_metrics_exist_before_the_directory_does(tmp_path: Path) -> None:
    m = Metrics(data_dir=tmp_path / "not" / "yet")
    samples = parse(m.registry.render())
    assert value(samples, "ges_data_dir_used_bytes") == 0
    assert value(samples, "ges_data_dir_free_bytes") > 0


def test_histogram_and_label_escaping_render() -> None:
    m = Metrics()
    m.ges_http_request_duration_seconds.observe(("POST", '/a"b\\c', "200"), 0.003)
    m.ges_http_request_duration_seconds.observe(("POST", '/a"b\\c', "200"), 7.0)
    text = m.registry.render()
    samples = parse(text)
    assert value(samples, "ges_http_request_duration_seconds_count", code="200") == 2
    assert value(samples, "ges_http_request_duration_seconds_bucket", le="0.005", code="200") == 1
    assert value(samples, "ges_http_request_duration_seconds_bucket", le="+Inf", code="200") == 2
    assert 'route="/a\\"b\\\\c"' in text


def _calls_of(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """The arguments of every call of the registry's function ``name`` from now on."""
    calls: list[Any] = []
    real = getattr(registry, name)

    def counted(value: Any) -> Any:
        calls.append(value)
        return real(value)

    monkeypatch.setattr(registry, name, counted)
    return calls


def test_a_series_labels_are_rendered_once_then_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    """At thousands of series a render only formats values: each series' labels are escaped
    and joined at its first render, not at every scrape."""
    r = registry.Registry()
    c = r.add(registry.Family("c", "counter", "counter", "h", ("tenant",)))
    h = r.add(registry.Family("d", "histogram", "histogram", "h", ("tenant",), buckets=(1.0,)))
    for t in ("a", 'b"q'):
        c.inc((t,))
        h.observe((t,), 0.5)
    calls = _calls_of(monkeypatch, "escape_label")
    first = r.render()
    assert len(calls) == 4
    c.inc(("a",), 2)
    second = r.render()
    assert len(calls) == 4
    assert 'c{tenant="a"} 3' in second and 'c{tenant="b\\"q"} 1' in first
    # A removed series is gone; one added later gets its own labels.
    c.remove(("a",))
    c.inc(("z",))
    third = r.render()
    assert 'tenant="a"}' not in third.split("# HELP d")[0] and 'c{tenant="z"} 1' in third


def test_a_render_never_serves_a_stale_value() -> None:
    """Series unchanged since the last scrape reuse their text; every change shows at the next
    render: inc, set, observe, ensure, remove, for the series changed and no other."""
    r = registry.Registry()
    c = r.add(registry.Family("c", "counter", "counter", "h", ("tenant",)))
    g = r.add(registry.Family("g", "gauge", "gauge", "h"))
    h = r.add(registry.Family("d", "histogram", "histogram", "h", ("tenant",), buckets=(1.0,)))
    for t in ("a", "b"):
        c.inc((t,))
    g.set((), 5)
    h.observe(("a",), 0.5)
    assert parse(r.render()) == parse(r.render())
    c.inc(("b",), 2)
    text = r.render()
    assert 'c{tenant="a"} 1\nc{tenant="b"} 3\n' in text
    g.set((), 5)
    assert r.render() == text  # the same value: nothing to render again
    g.set((), 7.5)
    assert "g 7.5\n" in r.render()
    h.observe(("a",), 3.0)
    text = r.render()
    assert 'd_bucket{tenant="a",le="1"} 1\nd_bucket{tenant="a",le="+Inf"} 2\n' in text
    assert 'd_sum{tenant="a"} 3.5\nd_count{tenant="a"} 2\n' in text
    h.ensure(("b",))
    c.ensure(("z",))
    text = r.render()
    assert 'd_count{tenant="b"} 0' in text and 'c{tenant="z"} 0' in text
    c.remove(("a",))
    h.remove(("a",))
    text = r.render()
    assert 'tenant="a"' not in text and 'c{tenant="b"} 3\nc{tenant="z"} 0\n' in text
    # Each step's text is what a registry rendering from scratch gives for the same series.
    fresh = registry.Registry()
    for fam in r.families.values():
        copy = fresh.add(registry.Family(fam.name, fam.kind, fam.exposition, fam.help, fam.labels))
        copy.buckets, copy.series, copy.hist = fam.buckets, dict(fam.series), dict(fam.hist)
    assert fresh.render() == text


def test_a_render_formats_only_the_series_changed_since_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At thousands of series a scrape under load formats the few that changed."""
    r = registry.Registry()
    c = r.add(registry.Family("c", "counter", "counter", "h", ("tenant",)))
    for i in range(1000):
        c.inc((f"t{i}",))
    r.render()
    calls = _calls_of(monkeypatch, "format_value")
    c.inc(("t7",))
    assert 'c{tenant="t7"} 2\n' in r.render() and calls == [2]
    assert 'c{tenant="t8"} 1\n' in r.render() and calls == [2]


def test_seldom_changing_process_gauges_are_read_at_most_every_10_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dialback.observability import metrics as metrics_module

    reads: list[int] = []

    def limit() -> int:
        reads.append(1)
        return 1000 * len(reads)

    monkeypatch.setattr(metrics_module, "memory_limit_bytes", limit)
    m = Metrics()
    name, space = "ges_nodejs_heap_space_size_available_bytes", "process"
    first = parse(m.registry.render())
    assert value(first, name, space=space) == 1000
    assert value(first, "ges_process_max_fds") > 0
    assert value(parse(m.registry.render()), name, space=space) == 1000
    assert len(reads) == 1
    m._slow_checked -= 10.5  # as if 10.5 s had passed
    assert value(parse(m.registry.render()), name, space=space) == 2000
