"""The chart's NetworkPolicy (on by default) and its refusal of demo mode: real helm template
and helm lint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart import test_chart as chart
from tests.chart.test_chart import CHART, K8S_VERSIONS, RELEASE, HelmRun, Render, one

# The fixtures of the chart tests (helm fetched once, a scratch HOME, cached renders).
helm_tools, helm_env, helm, render = chart.helm_tools, chart.helm_env, chart.helm, chart.render

INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
ADMINS = {"podSelector": {"matchLabels": {"role": "dialback-admin"}}}
OPS_PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}},
    "podSelector": {"matchLabels": {"app": "prom"}},
}
PG_NET = {"ipBlock": {"cidr": "10.20.0.0/16"}}
CONFIGURED = {
    "networkPolicy": {
        "public": {"from": [INGRESS_NGINX]},
        "internal": {"prometheus": [OPS_PROMETHEUS], "from": [ADMINS]},
        "egress": {
            "postgres": {"ports": [6432], "to": [PG_NET]},
            "extra": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}],
        },
    },
    "config": {
        "healthCheck": {
            "authUrl": "https://idp.example.com/health",
            "configSourceUrl": "http://config:8080/ready",
        }
    },
}


@pytest.fixture
def render_values(helm: HelmRun, tmp_path: Path) -> Any:
    def go(values: dict[str, Any]) -> list[dict[str, Any]]:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        out = helm("template", RELEASE, str(CHART), "--namespace", "callbacks", "-f", str(path))
        return [d for d in yaml.safe_load_all(out.stdout) if d]

    return go


def _rules(policy: dict[str, Any]) -> dict[int, list[dict[str, Any]] | None]:
    """Each ingress rule's port and its peers (None: any source)."""
    out = {}
    for rule in policy["spec"]["ingress"]:
        (port,) = rule["ports"]
        assert port["protocol"] == "TCP"
        out[port["port"]] = rule.get("from")
    return out


def _egress(policy: dict[str, Any]) -> list[tuple[list[tuple[int, str]], Any]]:
    return [
        ([(p["port"], p["protocol"]) for p in rule.get("ports", [])], rule.get("to"))
        for rule in policy["spec"]["egress"]
    ]


def test_by_default_only_prometheus_reaches_the_internal_port(render: Render) -> None:
    docs = render()
    policy = one(docs, "NetworkPolicy")
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert all(pod_labels.get(k) == v for k, v in selector.items())
    # Not the migration Job's or the test pod's (they are not servers).
    job = one(docs, "Job")["spec"]["template"]["metadata"]["labels"]
    assert not all(job.get(k) == v for k, v in selector.items())
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    rules = _rules(policy)
    assert set(rules) == {3005, 3050}
    assert rules[3005] is None  # the public API: any source
    test_pod = one(docs, "Pod")["metadata"]["labels"]
    prometheus, test = rules[3050] or []
    assert prometheus == {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    assert all(test_pod[k] == v for k, v in test["podSelector"]["matchLabels"].items())
    assert _egress(policy) == [
        ([(53, "TCP"), (53, "UDP")], None),
        ([(5432, "TCP")], None),
        ([(6379, "TCP")], None),
    ]


def test_configured_sources_destinations_and_health_urls(render_values: Any) -> None:
    policy = one(render_values(CONFIGURED), "NetworkPolicy")
    rules = _rules(policy)
    assert rules[3005] == [INGRESS_NGINX]
    assert (rules[3050] or [])[0] == OPS_PROMETHEUS and (rules[3050] or [])[-1] == ADMINS
    assert _egress(policy) == [
        ([(53, "TCP"), (53, "UDP")], None),
        ([(6432, "TCP")], [PG_NET]),
        ([(6379, "TCP")], None),
        ([(443, "TCP"), (8080, "TCP")], None),
        ([], [{"ipBlock": {"cidr": "192.0.2.0/24"}}]),
    ]
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(policy, version, strict=True)


def test_egress_reaches_the_oidc_issuer(render_values: Any) -> None:
    values = {
        "config": {"oidc": {"issuer": "https://sso.example.com:8443/realms/cc", "clientId": "d"}}
    }
    policy = one(render_values(values), "NetworkPolicy")
    assert ([(8443, "TCP")], None) in _egress(policy)


def test_with_no_peer_at_all_nothing_reaches_the_internal_port(render: Render) -> None:
    # An ingress rule with an empty "from" would admit every source: it must not be rendered.
    policy = one(
        render("networkPolicy.internal.prometheus=null", "tests.enabled=false"), "NetworkPolicy"
    )
    assert set(_rules(policy)) == {3005}


def test_ports_follow_the_container_ports(render: Render) -> None:
    policy = one(render("ports.public=8005", "ports.internal=8050"), "NetworkPolicy")
    assert set(_rules(policy)) == {8005, 8050}


def test_egress_and_the_whole_policy_can_be_switched_off(render: Render) -> None:
    policy = one(render("networkPolicy.egress.enabled=false"), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"]
    assert "NetworkPolicy" not in [d["kind"] for d in render("networkPolicy.enabled=false")]


def test_lint_and_schema_with_a_network_policy(helm: HelmRun, tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(CONFIGURED))
    helm("lint", "--strict", str(CHART), "-f", str(path))
    bad = helm(
        "template", "x", str(CHART), "--set", "networkPolicy.egress.postgres.port=1", check=False
    )
    assert bad.returncode != 0 and "port" in bad.stderr


def test_demo_mode_is_refused_unless_explicitly_allowed(
    helm: HelmRun,
    render: Render,
) -> None:
    for sets in (
        ["config.demo=true"],
        ["extraEnv[0].name=DIALBACK_DEMO", "extraEnv[0].value=true"],
    ):
        args = [a for s in sets for a in ("--set", s)]
        refused = helm("template", "x", str(CHART), *args, check=False)
        assert refused.returncode != 0, refused.stdout
        assert "config.allowDemo" in refused.stderr
        assert "prints its API key and an admin token" in refused.stderr
    data = one(render("config.demo=true", "config.allowDemo=true"), "ConfigMap")["data"]
    assert data["DIALBACK_DEMO"] == "true"
    assert one(render(), "ConfigMap")["data"]["DIALBACK_DEMO"] == "false"
