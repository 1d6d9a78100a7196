"""The registry renders valid text format; process metrics work without a data directory."""

from __future__ import annotations

from pathlib import Path

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


def test_a_series_labels_are_rendered_once_then_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    """At thousands of series a render only formats values: each series' labels are escaped
    and joined at its first render, not at every scrape."""
    r = registry.Registry()
    c = r.add(registry.Family("c", "counter", "counter", "h", ("tenant",)))
    h = r.add(registry.Family("d", "histogram", "histogram", "h", ("tenant",), buckets=(1.0,)))
    for t in ("a", 'b"q'):
        c.inc((t,))
        h.observe((t,), 0.5)
    calls: list[str] = []
    real = registry.escape_label

    def counted(value: str) -> str:
        calls.append(value)
        return real(value)

    monkeypatch.setattr(registry, "escape_label", counted)
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
