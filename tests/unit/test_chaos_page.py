"""docs/reliability.md: `make chaos` and `make soak` each rewrite their own section only."""

from __future__ import annotations

from pathlib import Path

from testbed.chaos import (
    PAGE_HEAD,
    CampaignConfig,
    CampaignResult,
    FaultRecord,
    render_result,
    write_section,
)


def test_each_command_rewrites_its_section_and_keeps_the_other(tmp_path: Path) -> None:
    page = tmp_path / "reliability.md"
    write_section(page, "soak", "soak figures 1")
    write_section(page, "chaos", "chaos figures 1")
    write_section(page, "soak", "soak figures 2")
    text = page.read_text()
    assert text.startswith(PAGE_HEAD)
    assert "chaos figures 1" in text and "soak figures 2" in text
    assert "soak figures 1" not in text
    assert text.index("## Fault campaign") < text.index("## Soak")
    assert text.count("<!-- chaos:begin -->") == 1 and text.count("<!-- soak:begin -->") == 1


def test_the_figures_name_what_ran_and_every_failed_check() -> None:
    res = CampaignResult(CampaignConfig(faults=("kill", "routing")), 0.0)
    res.faults.append(
        FaultRecord(
            "SIGKILL",
            "replica r1",
            10.0,
            cleared=14.0,
            first_ack=14.5,
            gauges_zero=16.0,
            flips={"GES_HEALTH": (11.0, 15.5)},
        )
    )
    res.failures.append("stuck: 3 acknowledged callbacks not COMPLETED")
    text = render_result(res)
    assert "faults: 0 kill events (0 SIGKILLs), routing Redis down 3 s, then empty." in text
    assert "PostgreSQL down" not in text and "poison row |" not in text
    assert "| 1 | SIGKILL: replica r1 | 0.0s | 4.0s | 0.5s | 2.0s | GES_HEALTH 1.0s/5.5s |" in text
    assert "- stuck: 3 acknowledged callbacks not COMPLETED" in text
    assert "All checks passed" not in text
