"""The Helm chart: lint, schema, rendering in both RBAC modes, and (marker `cluster`) the real apiserver,
`helm install`/`uninstall`, and what the operator's ServiceAccount may do, asked by impersonation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetune_operator.api.spec import FineTuneJobSpec
from finetune_operator.cluster.rbac import PERMISSIONS, Scope
from finetune_operator.config import GpuPrice, OperatorConfig
from finetune_operator.planner_service import planner_config
from finetune_operator.planning.config import PlannerConfig
from finetune_operator.planning.throughput import ThroughputMeasurement
from tests.conftest import ROOT, kubectl

CHART = ROOT / "charts" / "finetune-operator"
CRDS = ROOT / "crds"
# The testbin helm has no Kubernetes version compiled in (it would assume v1.20): render for the
# version the local control plane runs.
KUBE_VERSION = "1.36.3"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the project's helm."""
    return subprocess.run(["helm", *args], capture_output=True, text=True, check=check, timeout=300)


def render(*sets: str, namespace: str = "ftop", release: str = "t") -> list[dict[str, Any]]:
    """`helm template` with `--set` values, as a list of objects."""
    args = ["template", release, str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION]
    for s in sets:
        args += ["--set", s]
    out = helm(*args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> list[dict[str, Any]]:
    """Objects of `kind` whose name ends with `name_suffix`."""
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    """The single object of `kind` (and name suffix)."""
    found = find(docs, kind, name_suffix)
    assert len(found) == 1, f"expected one {kind}*{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


# --- without a cluster -----------------------------------------------------------------------------


@pytest.mark.parametrize("sets", [[], ["watchNamespaces={ml,team-a}"]], ids=["cluster-wide", "namespaced"])
def test_helm_lint(sets: list[str]) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    for s in sets:
        args += ["--set", s]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("replicaCount=2", "/replicaCount"),
        ("replicaCount=one", "/replicaCount"),
        ("watchNamespaces=ml", "/watchNamespaces"),
        ("watchNamespaces={Not_A_Namespace}", "/watchNamespaces/0"),
        ("image.tag=latest", "/image/tag"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("config.enabled_backends={Auto}", "/config/enabled_backends/0"),
        ("config.enabledBackends={HFJobs}", "/config"),
        ("config.trainer_image=ghcr.io/x/trainer:latest", "/config/trainer_image"),
        ("config.gpu_prices[0].usdPerGPUHour=-1", "/config/gpu_prices/0/usdPerGPUHour"),
        ("metrics.port=abc", "/metrics/port"),
        ("podSecurityContext.runAsNonRoot=false", "/podSecurityContext/runAsNonRoot"),
        ("replicas=1", "replicas"),
    ],
)
def test_schema_refuses_bad_values(value: str, complaint: str) -> None:
    result = helm("template", "t", str(CHART), "--kube-version", KUBE_VERSION, "--set", value, check=False)
    assert result.returncode != 0, f"helm accepted {value}"
    assert "schema" in result.stderr and complaint in result.stderr, result.stderr


def test_schema_config_lists_every_operator_config_field() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    in_schema = set(schema["properties"]["config"]["properties"])
    # metrics_port is set from metrics.port so the Service and the operator agree; operator_namespace is
    # the pod's own namespace (POD_NAMESPACE, from the Deployment), where the `-self` Role grants Secrets;
    # events_signing_key is a secret, so it comes from the chart's own Secret, never from values.
    from_elsewhere = {"metrics_port", "operator_namespace", "events_signing_key"}
    assert "events_signing_key" not in in_schema
    assert in_schema | from_elsewhere == set(OperatorConfig.model_fields)
    price = schema["properties"]["config"]["properties"]["gpu_prices"]["items"]
    assert set(price["properties"]) == {f.alias or n for n, f in GpuPrice.model_fields.items()}


def test_rendered_config_is_a_valid_operator_config(tmp_path: Path) -> None:
    docs = render("metrics.port=9100", "config.hf_endpoint=http://hub.internal:8080")
    data = one(docs, "ConfigMap", "-config")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(data)
    config = OperatorConfig.load(path)
    assert config.metrics_port == 9100
    assert config.hf_endpoint == "http://hub.internal:8080"
    assert config.default_token_secret == "hf-token"
    assert {p.product for p in config.gpu_prices} >= {"NVIDIA-H100-80GB-HBM3", "NVIDIA-A10G"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in config.tolerations
    service = one(docs, "Service", "-metrics")
    assert service["spec"]["ports"][0]["port"] == 9100
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in container["ports"]


# A value other than the default for every planner setting, as a user writes it in the chart's values, and
# where it goes there (`cluster_gpu_prices` are `config.gpu_prices`, which also price the cluster's offers).
PLANNER_VALUES: dict[str, tuple[tuple[str, ...], Any]] = {
    "prefer_cluster": (("planner", "prefer_cluster"), False),
    "hf_jobs_enabled": (("planner", "hf_jobs_enabled"), False),
    "headroom": (("planner", "headroom"), 0.2),
    "max_gpus": (("planner", "max_gpus"), 4),
    "max_nodes": (("planner", "max_nodes"), 2),
    "auto_full_max_gpus": (("planner", "auto_full_max_gpus"), 2),
    "local_gpus": (("planner", "local_gpus"), 2),
    "local_gpu_product": (("planner", "local_gpu_product"), "NVIDIA-A10G"),
    "local_gpu_memory_gib": (("planner", "local_gpu_memory_gib"), 22.5),
    "local_memory_gib": (("planner", "local_memory_gib"), 64.0),
    "local_cpu_tflops": (("planner", "local_cpu_tflops"), 1.0),
    "local_usd_per_hour": (("planner", "local_usd_per_hour"), 0.75),
    "cpu_max_parameters": (("planner", "cpu_max_parameters"), 1e9),
    "cpu_tflops_per_vcpu": (("planner", "cpu_tflops_per_vcpu"), 0.1),
    "throughput_measurements": (
        ("planner", "throughput_measurements"),
        [{"gpu": "H100", "parametersBillions": 7.6, "peft": "LoRA", "tokensPerSecond": 3100}],
    ),
    "startup_hours": (("planner", "startup_hours"), 0.25),
    "timeout_margin": (("planner", "timeout_margin"), 2.0),
    "cluster_gpu_prices": (("gpu_prices",), [{"product": "NVIDIA-L4", "usdPerGPUHour": 0.4}]),
}


def test_every_planner_setting_is_settable_from_the_chart(tmp_path: Path) -> None:
    """What a user sets in `config` reaches the planner the operator (and `ftjob plan`) runs with."""
    assert set(PLANNER_VALUES) == set(PlannerConfig.model_fields), "a planner setting the chart cannot set"
    config: dict[str, Any] = {"enabled_backends": ["HFJobs", "Kubernetes"]}
    for path, value in PLANNER_VALUES.values():
        node = config
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": config}))
    out = helm("template", "t", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values)).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    path = tmp_path / "config.yaml"
    path.write_text(one(docs, "ConfigMap", "-config")["data"]["config.yaml"])
    planner = planner_config(OperatorConfig.load(path))
    expected = PlannerConfig.model_validate({name: value for name, (_, value) in PLANNER_VALUES.items()})
    default = PlannerConfig()
    for name in PlannerConfig.model_fields:
        assert getattr(expected, name) != getattr(default, name), (
            f"{name}: pick a value other than the default"
        )
        assert getattr(planner, name) == getattr(expected, name), name


def test_the_charts_planner_defaults_are_the_planners() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert PlannerConfig.model_validate(values["config"]["planner"]) == PlannerConfig()
    schema = json.loads((CHART / "values.schema.json").read_text())
    planner = schema["properties"]["config"]["properties"]["planner"]
    assert set(planner["properties"]) == set(PlannerConfig.model_fields) - {"cluster_gpu_prices"}
    item = planner["properties"]["throughput_measurements"]["items"]
    assert set(item["properties"]) == {f.alias or n for n, f in ThroughputMeasurement.model_fields.items()}


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("config.planner.headroom=0.95", "/config/planner/headroom"),
        ("config.planner.max_gpus=0", "/config/planner/max_gpus"),
        ("config.planner.maxGpus=4", "/config/planner"),
        ("config.planner.cluster_gpu_prices=null", "/config/planner"),
        ("config.prefer_cluster=false", "/config"),
    ],
)
def test_schema_refuses_bad_planner_values(value: str, complaint: str) -> None:
    result = helm("template", "t", str(CHART), "--kube-version", KUBE_VERSION, "--set", value, check=False)
    assert result.returncode != 0, f"helm accepted {value}"
    assert "schema" in result.stderr and complaint in result.stderr, result.stderr


def test_deployment_runs_one_standalone_kopf_as_non_root() -> None:
    docs = render()
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][:5] == ["kopf", "run", "--standalone", "-m", "finetune_operator.main"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["command"]
    assert container["command"][-1] == "--all-namespaces"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {"name": "healthz", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert env["FTJOB_CONFIG"] == f"{mount['mountPath']}/config.yaml"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]
    assert container["image"] == "ghcr.io/finetune-operator/operator:0.1.0"
    # No job's token reaches the operator's pod spec (it reads one through the API when it needs it); the
    # only Secret there is the operator's own event-signing key, from the chart's own Secret.
    secret_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(secret_refs) == {"FTJOB_EVENTS_SIGNING_KEY"}
    signing = one(docs, "Secret", "-events-signing")
    assert secret_refs["FTJOB_EVENTS_SIGNING_KEY"] == {"name": signing["metadata"]["name"], "key": "key"}
    assert not any("secret" in v for v in pod["volumes"])


def test_namespaced_mode_watches_each_namespace_with_a_role_in_each() -> None:
    docs = render("watchNamespaces={ml,team-a}")
    command = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--all-namespaces" not in command
    assert [c for c in command if c.startswith("--namespace")] == ["--namespace=ml", "--namespace=team-a"]
    roles = find(docs, "Role", "-jobs")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ml", "team-a"]
    assert sorted(b["metadata"]["namespace"] for b in find(docs, "RoleBinding", "-jobs")) == ["ml", "team-a"]
    # Namespaced resources are granted by the Roles only; the ClusterRole covers nodes and CRDs.
    assert [c["metadata"]["name"] for c in find(docs, "ClusterRole")] == ["t-finetune-operator-cluster"]
    cluster_rules = rules_of(one(docs, "ClusterRole"))
    assert set(cluster_rules) == {("", "nodes"), ("apiextensions.k8s.io", "customresourcedefinitions")}


def test_cluster_wide_mode_uses_cluster_roles_and_no_roles() -> None:
    docs = render()
    assert find(docs, "Role", "-jobs") == [] and find(docs, "RoleBinding", "-jobs") == []
    jobs = rules_of(one(docs, "ClusterRole", "-jobs"))
    assert jobs[("finetune.dev", "finetunejobs/status")] >= {"patch"}
    binding = one(docs, "ClusterRoleBinding", "-jobs")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "t-finetune-operator", "namespace": "ftop"}
    ]


def needed(scope: Scope) -> dict[tuple[str, str], set[str]]:
    """What the operator's code uses (finetune_operator.cluster.rbac), as (apiGroup, resource) -> verbs."""
    out: dict[tuple[str, str], set[str]] = {}
    for p in PERMISSIONS:
        if p.scope == scope:
            out.setdefault((p.group, p.resource), set()).add(p.verb)
    return out


@pytest.mark.parametrize("sets", [[], ["watchNamespaces={ml}"]], ids=["cluster-wide", "namespaced"])
def test_rbac_grants_exactly_what_the_code_uses(sets: list[str]) -> None:
    """Each role holds what `rbac.PERMISSIONS` lists for its scope: a call the code makes that the chart
    does not grant fails here, and so does a grant nothing uses."""
    docs = render(*sets)
    jobs_role = one(docs, "Role" if sets else "ClusterRole", "-jobs")
    assert rules_of(jobs_role) == needed(Scope.WATCHED)
    assert rules_of(one(docs, "ClusterRole", "-cluster")) == needed(Scope.CLUSTER)
    own = one(docs, "Role", "-self")
    assert own["metadata"]["namespace"] == "ftop" and rules_of(own) == needed(Scope.OPERATOR)


def test_service_monitor_selects_the_metrics_service() -> None:
    assert find(render(), "ServiceMonitor") == []
    docs = render("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom")
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service", "-metrics")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    refused = helm(
        "template", "t", str(CHART), "--kube-version", KUBE_VERSION,
        "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.service.enabled=false",
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "metrics.service.enabled" in refused.stderr


def test_dashboard_configmap_carries_the_dashboard() -> None:
    assert find(render(), "ConfigMap", "-dashboard") == []
    dashboard = CHART / "dashboards" / "finetune-operator.json"
    args = [
        "template",
        "t",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "grafana.dashboard.enabled=true",
    ]
    if not dashboard.exists():
        result = helm(*args, check=False)
        assert result.returncode != 0 and "dashboards/finetune-operator.json" in result.stderr
        pytest.skip("charts/finetune-operator/dashboards/finetune-operator.json is not written yet")
    docs = render("grafana.dashboard.enabled=true", "grafana.dashboard.namespace=monitoring")
    cm = one(docs, "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert json.loads(cm["data"]["finetune-operator.json"]) == json.loads(dashboard.read_text())


def test_chart_crds_are_the_generated_crds() -> None:
    generated = sorted(p.name for p in CRDS.glob("*.yaml"))
    assert "finetune.dev_finetunejobs.yaml" in generated, "run `make crds`"
    in_chart = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert in_chart == generated, "run `make chart` to copy crds/ into the chart"
    for name in generated:
        assert (CHART / "crds" / name).read_text() == (CRDS / name).read_text(), (
            f"{name} is stale: `make chart`"
        )


NOTES_PROBE = """apiVersion: v1
kind: ConfigMap
metadata: {name: notes}
data:
  notes: |
    {{- include (print $.Template.BasePath "/NOTES.txt") . | nindent 4 }}
"""


def notes(tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` prints it, rendered without a cluster: a copy of the chart gets a
    template that includes NOTES.txt into a ConfigMap, which `helm template --show-only` prints."""
    chart = tmp_path / "chart"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        (chart / "templates" / "notes-probe.yaml").write_text(NOTES_PROBE)
    args = ["template", "t", str(chart), "-n", "ftop", "--show-only", "templates/notes-probe.yaml"]
    for s in sets:
        args += ["--set", s]
    return str(yaml.safe_load(helm(*args).stdout)["data"]["notes"])


def test_notes_tell_what_to_apply_next(tmp_path: Path) -> None:
    text = notes(tmp_path, "watchNamespaces={ml}")
    assert "kubectl -n ml get ftj" in text
    assert "kubectl -n ml wait --for=condition=Complete ftj/my-first-sft" in text
    assert """patch ftj my-first-sft --type=merge -p '{"spec":{"suspend":false}}'""" in text
    # The FineTuneJob it shows is a valid spec, suspended.
    match = re.search(r"<<'YAML'.*?\n(.*?)\n\s*YAML\n", text, re.S)
    assert match, text
    job = yaml.safe_load("\n".join(line[3:] for line in match.group(1).splitlines()))
    spec = FineTuneJobSpec.model_validate(job["spec"])
    assert spec.suspend is True
    assert job["kind"] == "FineTuneJob" and job["apiVersion"] == "finetune.dev/v1alpha1"
    assert "every namespace" in notes(tmp_path)


# --- on the local control plane --------------------------------------------------------------------


@pytest.fixture
def other_namespace(core_v1: Any) -> Iterator[str]:
    """A second namespace, which the namespaced install does not watch."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core_v1.delete_namespace(name, propagation_policy="Background")


@pytest.mark.cluster
@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
def test_template_accepted_by_the_apiserver(namespace: str, other_namespace: str, namespaced: bool) -> None:
    sets = [f"watchNamespaces={{{namespace},{other_namespace}}}"] if namespaced else []
    sets += (
        ["grafana.dashboard.enabled=true"]
        if (CHART / "dashboards" / "finetune-operator.json").exists()
        else []
    )
    release = f"dry-{namespace}"
    docs = render(*sets, namespace=namespace, release=release)
    manifest = yaml.safe_dump_all(docs)
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(docs)


def can_i(sa: str, verb: str, resource: str, namespace: str | None = None, subresource: str = "") -> bool:
    """Whether the ServiceAccount `namespace:name` in `sa` may, as the API server's authorizer decides (a
    SubjectAccessReview: unlike `kubectl auth can-i`, it needs no discovery of the resource, so a rule for
    Kueue's resources is checked in a cluster where Kueue is not installed yet)."""
    plural, _, group = resource.partition(".")
    sa_namespace = sa.split(":")[0]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{sa}",
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{sa_namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": plural,
                "subresource": subresource,
                "namespace": namespace or "",
            },
        },
    }
    result = kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    return bool(json.loads(result.stdout)["status"].get("allowed"))


def install(release: str, namespace: str, *sets: str) -> None:
    """`helm install --wait`: kwok marks the operator's pod Running and Ready (no container really runs)."""
    args = ["install", release, str(CHART), "-n", namespace, "--wait", "--timeout", "3m"]
    for s in sets:
        args += ["--set", s]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stderr
    assert "kubectl" in result.stdout and "condition=Complete" in result.stdout  # NOTES were printed


@pytest.mark.cluster
@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
def test_install_rbac_and_uninstall(
    kubeconfig: Path, namespace: str, other_namespace: str, namespaced: bool
) -> None:
    # The operator lives in `namespace`; namespaced mode watches `watched` (created here) only.
    watched = f"{namespace}-w"
    kubectl("create", "namespace", watched)
    release = f"fto-{namespace}"
    sets = [f"watchNamespaces={{{watched}}}"] if namespaced else []
    try:
        install(release, namespace, *sets)
        pods = kubectl(
            "get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}",
            "-o", "jsonpath={.items[*].status.phase}",
        ).stdout.split()  # fmt: skip
        assert pods == ["Running"]
        sa = f"{namespace}:{release}-finetune-operator"

        # Everything the operator's code uses, where it uses it, as the API server decides.
        where = {Scope.CLUSTER: None, Scope.WATCHED: watched, Scope.OPERATOR: namespace}
        for p in PERMISSIONS:
            resource, _, sub = p.resource.partition("/")
            full = f"{resource}.{p.group}" if p.group else resource
            assert can_i(sa, p.verb, full, where[p.scope], subresource=sub), p
        # And no more.
        assert not can_i(sa, "list", "secrets", watched)
        assert not can_i(sa, "update", "finetunejobs.finetune.dev", watched)
        assert not can_i(sa, "delete", "finetunejobs.finetune.dev", watched)
        assert not can_i(sa, "create", "pods", watched)
        assert not can_i(sa, "create", "deployments.apps", watched)
        assert not can_i(sa, "delete", "nodes")
        assert not can_i(sa, "patch", "nodes")
        assert not can_i(sa, "create", "clusterroles.rbac.authorization.k8s.io")
        assert not can_i(sa, "create", "rolebindings.rbac.authorization.k8s.io", watched)
        assert not can_i(sa, "impersonate", "serviceaccounts")
        assert not can_i(sa, "create", "customresourcedefinitions.apiextensions.k8s.io")
        if namespaced:
            # Outside its watched namespaces it can read nothing of a job's.
            assert not can_i(sa, "get", "secrets", other_namespace)
            assert not can_i(sa, "create", "jobs.batch", other_namespace)
            assert not can_i(sa, "list", "finetunejobs.finetune.dev", other_namespace)
            assert not can_i(sa, "list", "secrets", namespace)
        else:
            assert can_i(sa, "create", "jobs.batch", other_namespace)

        uninstalled = helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "2m", check=False)
        assert uninstalled.returncode == 0, uninstalled.stderr
        left = kubectl(
            "get", "deployment,serviceaccount,configmap,service", "-n", namespace, "-o", "name"
        ).stdout
        assert release not in left
        cluster_roles = kubectl("get", "clusterroles,clusterrolebindings", "-o", "name").stdout
        assert release not in cluster_roles
        assert not can_i(sa, "list", "nodes")
    finally:
        helm("uninstall", release, "-n", namespace, "--ignore-not-found", check=False)
        kubectl("delete", "namespace", watched, "--wait=false", check=False)
