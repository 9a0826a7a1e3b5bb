"""The training pod the Kubernetes backend renders fits a real cluster: sized, bounded, non-root, stoppable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from finetune_operator.api.resource import FineTuneJob
from finetune_operator.api.status import PlanSummary
from finetune_operator.backends.base import JobTarget
from finetune_operator.backends.kubernetes import KubernetesBackend
from finetune_operator.config import OperatorConfig
from finetune_operator.lifecycle.render import render_plan

ROOT = Path(__file__).resolve().parents[2]
JOB = FineTuneJob.model_validate(
    {
        "metadata": {"name": "bot", "namespace": "ml", "uid": "abcdef12-0000", "generation": 1},
        "spec": {"model": {"name": "Qwen/Qwen3-0.6B"}, "dataset": {"name": "org/data"}, "method": "SFT"},
    }
)
SUMMARY = PlanSummary.model_validate(
    {
        "backend": "Kubernetes", "target": "Kubernetes/L40S", "gpuCount": 2, "gpuProduct": "NVIDIA-L40S",
        "peft": "LoRA", "memoryGib": 20, "estimatedHours": 1, "estimatedCostUSD": 1.5,
        "suggestedTimeout": "2h", "reason": "fits",
    }
)  # fmt: skip


class Unread:
    """A create's answer left unread (`_preload_content=False`), as urllib3 returns it."""

    def drain_conn(self) -> None: ...

    def release_conn(self) -> None: ...


def rendered(summary: PlanSummary = SUMMARY, queue: str | None = None, **config: Any) -> dict[str, Any]:
    cfg = OperatorConfig(enabled_backends=[], metrics_port=0, **config)
    backend = KubernetesBackend(client.ApiClient(), cfg)
    target = JobTarget(namespace="ml", name="bot", uid="abcdef12-0000", queue=queue)
    owner = client.V1OwnerReference(api_version="v1", kind="FineTuneJob", name="bot", uid="abcdef12-0000")
    job = backend._job("bot-1", {}, owner, target, render_plan(JOB, summary, cfg, attempt=1), 7200)
    out: dict[str, Any] = client.ApiClient().sanitize_for_serialization(job)
    return out


def test_the_pod_requests_cpu_and_memory_and_is_burstable_by_default() -> None:
    (container,) = rendered()["spec"]["template"]["spec"]["containers"]
    resources = container["resources"]
    assert resources["requests"] == {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "2"}
    assert resources["limits"] == {"nvidia.com/gpu": "2"}  # no CPU/memory limit: QoS Burstable


def test_guaranteed_sets_limits_equal_to_requests() -> None:
    (container,) = rendered(trainer_guaranteed=True, trainer_cpu="8", trainer_memory="64Gi")["spec"][
        "template"
    ]["spec"]["containers"]
    assert container["resources"]["limits"] == container["resources"]["requests"]
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}


def test_shared_memory_is_bounded() -> None:
    volumes = {v["name"]: v for v in rendered(shm_size_limit="4Gi")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}


def test_the_pod_runs_as_the_trainer_images_user() -> None:
    dockerfile = (ROOT / "images" / "trainer" / "Dockerfile").read_text()
    (user,) = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    uid = int(user.split(":")[0])
    pod = rendered()["spec"]["template"]["spec"]
    ctx = pod["containers"][0]["securityContext"]
    assert (
        ctx["runAsNonRoot"] is True and ctx["runAsUser"] == uid and ctx["allowPrivilegeEscalation"] is False
    )


def test_the_deadline_counts_training_time_and_the_grace_covers_the_checkpoint_push() -> None:
    job = rendered(termination_grace_period_seconds=1200)
    assert "activeDeadlineSeconds" not in job["spec"]  # a Job's deadline would count time queued for GPUs
    pod = job["spec"]["template"]["spec"]
    assert pod["activeDeadlineSeconds"] == 7200
    assert pod["terminationGracePeriodSeconds"] == 1200
    assert OperatorConfig(enabled_backends=[], metrics_port=0).termination_grace_period_seconds >= 600


def test_a_run_over_several_nodes_is_an_indexed_job_whose_pods_meet_at_node_0() -> None:
    job = rendered(SUMMARY.model_copy(update={"nodes": 2}))
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert spec["backoffLimit"] == 0, "one node failing ends the attempt: half a process group cannot go on"
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == "bot-1", "the headless Service's name, so pod 0 is `bot-1-0.bot-1`"
    term = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname", "one pod per node"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["PET_MASTER_ADDR"]["value"] == "bot-1-0.bot-1" and env["PET_MASTER_PORT"]["value"] == "29500"
    rank = env["PET_NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert rank == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2", "GPUs per node"


def test_one_node_keeps_a_plain_job_that_retries_its_pod() -> None:
    spec = rendered()["spec"]
    assert "completionMode" not in spec and spec["backoffLimit"] == 2
    assert not any(e["name"].startswith("PET_") for e in spec["template"]["spec"]["containers"][0]["env"])


def test_a_queued_job_is_created_suspended_with_kueues_queue_label() -> None:
    job = rendered(queue="team-a")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["spec"]["suspend"] is True, "Kueue admits it by unsuspending it"
    unqueued = rendered()
    assert (
        "suspend" not in unqueued["spec"]
        and "kueue.x-k8s.io/queue-name" not in unqueued["metadata"]["labels"]
    )


def test_the_plan_travels_in_the_pod_template_and_no_configmap_is_written() -> None:
    """One API write fewer per attempt: the plan is a pod-template annotation the downward API mounts where
    `--plan` reads it; the attempt's objects are its event-key Secret and its Job, nothing else."""
    from finetune_training.plan import TrainingPlan

    job = rendered()
    template = job["spec"]["template"]
    plan = TrainingPlan.model_validate_json(template["metadata"]["annotations"]["finetune.dev/plan"])
    assert plan.resources.gpu_count == 2
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "plan"]
    (source,) = volume["projected"]["sources"]
    assert source["downwardAPI"]["items"] == [
        {"path": "plan.json", "fieldRef": {"fieldPath": "metadata.annotations['finetune.dev/plan']"}}
    ]
    (container,) = template["spec"]["containers"]
    assert container["command"][-2:] == ["--plan", "/etc/ftjob/plan.json"]

    cfg = OperatorConfig(enabled_backends=[], metrics_port=0, pod_annotations={"team": "a"})
    backend = KubernetesBackend(client.ApiClient(), cfg)
    made: list[str] = []
    backend.core.create_namespaced_secret = lambda ns, body, **_: made.append("V1Secret") or Unread()  # type: ignore[method-assign]
    target = JobTarget(
        namespace="ml", name="bot", uid="abcdef12-0000", events_key="k3y-never-in-the-spec",
        token_secret_name="hf", token_secret_key="token", token="hf_never_in_the_spec",
    )  # fmt: skip
    captured: list[Any] = []
    backend.batch.create_namespaced_job = lambda ns, body, **_: (
        captured.append(body) or made.append("V1Job") or Unread()
    )  # type: ignore[method-assign]
    backend.submit(target, render_plan(JOB, SUMMARY, cfg, attempt=1), 7200)
    assert made == ["V1Secret", "V1Job"]
    spec = str(client.ApiClient().sanitize_for_serialization(captured[0]))
    assert "k3y-never-in-the-spec" not in spec and "hf_never_in_the_spec" not in spec
    assert captured[0].spec.template.metadata.annotations["team"] == "a"
