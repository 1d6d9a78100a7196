"""The registry renders valid text format; process metrics work without a data directory."""

from __future__ import annotations

from pathlib import Path

from testbed.metrics_parse import parse, value

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
