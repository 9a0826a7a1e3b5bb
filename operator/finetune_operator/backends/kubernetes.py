"""The Kubernetes backend: a batch/v1 Job running `ftjob train` on this cluster's GPU nodes.

Several nodes: an Indexed Job (one pod per node, its completion index the node rank) with a headless Service
that gives pod 0 the name every node's torchrun joins at. Kubernetes' and PyTorch's own machinery: the Job
controller makes and counts the pods, torchrun forms the process group. Any pod failing fails the whole Job
(a half-run group cannot go on); the operator retries it as a new attempt from the last checkpoint.

Queues: with a Kueue LocalQueue, the Job carries Kueue's queue-name label and is created suspended; Kueue
admits it (unsuspends) when the ClusterQueue has quota, and suspends it again to preempt it.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from finetune_operator.backends.base import JobTarget, LogCursor, WorkRef, WorkState, WorkStatus
from finetune_operator.backends.podlogs import read_since
from finetune_operator.cluster.identity import ATTEMPT_LABEL, UID_LABEL, is_attempt, labels_for, work_name
from finetune_operator.cluster.rbac import api_error
from finetune_operator.cluster.watched import WatchedWork
from finetune_operator.config import OperatorConfig
from finetune_training.events import KEY_ENV as EVENTS_KEY_ENV
from finetune_training.plan import TrainingPlan

PLAN_KEY = "plan.json"
PLAN_ANNOTATION = "finetune.dev/plan"
"""The pod template's annotation holding the plan (JSON), projected into `PLAN_MOUNT/PLAN_KEY` by the downward
API: the plan needs no object of its own (it holds no secret: the token and the event key never enter it)."""
EVENTS_SECRET_KEY = "key"
PLAN_MOUNT = "/etc/ftjob"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSIONS = ("v1beta2", "v1beta1")
KUEUE_WORKLOAD_GRACE_SECONDS = 30.0
"""Kueue makes a Job's Workload within seconds: until then, no Workload is no news (a thousand queued Jobs
would each cost a status write saying so), and after it the message asks whether Kueue runs at all."""
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
RENDEZVOUS_PORT = 29500
TRAINER_UID = 10001  # the `ftjob` user of images/trainer/Dockerfile: the pod runs as the image's own user


def lines_of(chunks: Iterable[bytes | str]) -> Iterator[str]:
    """Whole lines from a stream of chunks that may split lines anywhere (a followed pod log)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may split a character too
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        *complete, pending = pending.split("\n")
        yield from (line.rstrip("\r") for line in complete)
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending.rstrip("\r")


def _one_pod_per_node(job_name: str) -> client.V1Affinity:
    """Each node of a multi-node run is its own machine: two of its pods never share one."""
    term = client.V1PodAffinityTerm(
        label_selector=client.V1LabelSelector(match_labels={"batch.kubernetes.io/job-name": job_name}),
        topology_key="kubernetes.io/hostname",
    )
    return client.V1Affinity(
        pod_anti_affinity=client.V1PodAntiAffinity(required_during_scheduling_ignored_during_execution=[term])
    )


def _completion_index(pod: client.V1Pod) -> str | None:
    """The pod's node rank in an Indexed Job, None for a one-pod Job."""
    return ((pod.metadata.annotations if pod.metadata else None) or {}).get(COMPLETION_INDEX)


class KubernetesBackend:
    """Runs the plan as a batch/v1 Job owned by the FineTuneJob."""

    kind = "Job"
    needs_token = False  # the token reaches the pod through a secretKeyRef
    retries_itself = True  # the Job's backoffLimit restarts failed pods
    collected_with_job = True  # its Job, Secret and Service are owned by the FineTuneJob

    def __init__(self, api_client: client.ApiClient, config: OperatorConfig) -> None:
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.config = config
        self._cluster_queues: dict[tuple[str, str], tuple[str | None, float]] = {}
        self.seen: WatchedWork | None = None
        """Training Jobs and pods from the operator's watches (`watched`), once the operator has them."""

    def watch_from(self, seen: WatchedWork) -> None:
        """Read Jobs and pods from the watches' indexes instead of a GET and a pod list per poll."""
        self.seen = seen

    @property
    def watched(self) -> bool:
        """Whether changes of its Jobs and pods are pushed (watched), so polling can be rare."""
        return self.seen is not None

    def find(self, target: JobTarget) -> WorkRef | None:
        """The Job labelled with this FineTuneJob's UID, if one exists.

        Watched: the attempt's Job by its name, from the index (filled from the initial listing before any
        handler runs). A Job the index does not show yet reads as none: submitting it again is harmless, since
        every object it creates has the attempt's fixed name (an existing one is kept).
        """
        if self.seen is not None:
            name = work_name(target.name, target.uid, target.attempt)
            job = self.seen.job(target.namespace, name)
            if job is None or not is_attempt(
                job.metadata.labels if job.metadata else None, ATTEMPT_LABEL, target.attempt
            ):
                return None
            return WorkRef(kind=self.kind, id=name, namespace=target.namespace, attempt=target.attempt)
        try:
            jobs = self.batch.list_namespaced_job(
                target.namespace, label_selector=f"{UID_LABEL}={target.uid}"
            )
        except ApiException as exc:
            raise api_error(exc, "list", "jobs", target.namespace) from None
        mine = [
            j
            for j in jobs.items
            if j.metadata and is_attempt(j.metadata.labels, ATTEMPT_LABEL, target.attempt)
        ]
        if not mine:
            return None
        meta = mine[0].metadata
        assert meta is not None and meta.name
        return WorkRef(kind=self.kind, id=meta.name, namespace=target.namespace, attempt=target.attempt)

    def submit(self, target: JobTarget, plan: TrainingPlan, timeout_seconds: int) -> WorkRef:
        """Create the attempt's event-key Secret and the Job carrying the plan (both owned by the FineTuneJob;
        creation is idempotent)."""
        name = work_name(target.name, target.uid, target.attempt)
        owner = client.V1OwnerReference(
            api_version="finetune.dev/v1alpha1",
            kind="FineTuneJob",
            name=target.name,
            uid=target.uid,
            controller=True,
            block_owner_deletion=True,
        )
        labels = labels_for(target.name, target.uid, target.attempt)
        # The plan travels in the Job itself (see `_job`): no ConfigMap, one API write fewer per attempt.
        if target.events_key:
            # The attempt's event key reaches the pod by reference only, like the token.
            key_secret = client.V1Secret(
                metadata=client.V1ObjectMeta(name=f"{name}-events", labels=labels, owner_references=[owner]),
                string_data={EVENTS_SECRET_KEY: target.events_key},
            )
            self._create(
                lambda: self.core.create_namespaced_secret(
                    target.namespace, key_secret, _preload_content=False
                ),
                "secrets",
                target.namespace,
            )
        if plan.resources.nodes > 1:
            # Headless: DNS names for the Job's pods (`<job>-<index>.<job>`), so every node finds node 0.
            service = client.V1Service(
                metadata=client.V1ObjectMeta(name=name, labels=labels, owner_references=[owner]),
                spec=client.V1ServiceSpec(
                    cluster_ip="None",
                    selector={"batch.kubernetes.io/job-name": name},
                    # Rendezvous happens before any pod is Ready: publish the names at once.
                    publish_not_ready_addresses=True,
                    ports=[client.V1ServicePort(name="rendezvous", port=RENDEZVOUS_PORT)],
                ),
            )
            self._create(
                lambda: self.core.create_namespaced_service(
                    target.namespace, service, _preload_content=False
                ),
                "services",
                target.namespace,
            )
        job = self._job(name, labels, owner, target, plan, timeout_seconds)
        self._create(
            lambda: self.batch.create_namespaced_job(target.namespace, job, _preload_content=False),
            "jobs",
            target.namespace,
        )
        return WorkRef(kind=self.kind, id=name, namespace=target.namespace, attempt=target.attempt)

    @staticmethod
    def _create(call: Any, resource: str, namespace: str) -> None:
        """Create an object; its echo is dropped unread (`_preload_content=False`): decoding a Job's echo into
        models was an eighth of the operator's CPU while it submits a thousand jobs, for nothing."""
        try:
            answer = call()
            answer.drain_conn()
            answer.release_conn()
        except ApiException as exc:
            if exc.status != 409:  # already exists: an earlier attempt got this far
                raise api_error(exc, "create", resource, namespace) from None

    def _job(
        self,
        name: str,
        labels: dict[str, str],
        owner: client.V1OwnerReference,
        target: JobTarget,
        plan: TrainingPlan,
        timeout_seconds: int,
    ) -> client.V1Job:
        cfg = self.config
        env = [
            client.V1EnvVar(name="TRACKIO_DIR", value="/workspace/trackio"),
            client.V1EnvVar(name="HF_HOME", value="/workspace/hf"),
            client.V1EnvVar(name="HF_HUB_DISABLE_TELEMETRY", value="1"),
        ]
        if cfg.hf_endpoint:
            env.append(client.V1EnvVar(name="HF_ENDPOINT", value=cfg.hf_endpoint))
        if target.token_secret_name:
            # The token only ever travels as a reference; its value never enters the pod spec.
            env.append(
                client.V1EnvVar(
                    name="HF_TOKEN",
                    value_from=client.V1EnvVarSource(
                        secret_key_ref=client.V1SecretKeySelector(
                            name=target.token_secret_name, key=target.token_secret_key
                        )
                    ),
                )
            )
        if target.events_key:
            env.append(
                client.V1EnvVar(
                    name=EVENTS_KEY_ENV,
                    value_from=client.V1EnvVarSource(
                        secret_key_ref=client.V1SecretKeySelector(
                            name=f"{name}-events", key=EVENTS_SECRET_KEY
                        )
                    ),
                )
            )
        nodes = plan.resources.nodes
        if nodes > 1:
            # torchrun's own variables (launch.py): which node this pod is, and where node 0 listens.
            index = client.V1ObjectFieldSelector(field_path=f"metadata.annotations['{COMPLETION_INDEX}']")
            env += [
                client.V1EnvVar(name="PET_NODE_RANK", value_from=client.V1EnvVarSource(field_ref=index)),
                client.V1EnvVar(name="PET_MASTER_ADDR", value=f"{name}-0.{name}"),
                client.V1EnvVar(name="PET_MASTER_PORT", value=str(RENDEZVOUS_PORT)),
            ]
        gpus = plan.resources.gpu_count
        # GPUs are requested as limits (extended resources); CPU and memory as requests, and as limits too
        # when the installation wants QoS Guaranteed (see `OperatorConfig.trainer_guaranteed`).
        requests = {"cpu": str(cfg.trainer_cpu), "memory": cfg.trainer_memory}
        limits = {GPU_RESOURCE: str(gpus)} if gpus else {}
        if cfg.trainer_guaranteed:
            limits = {**requests, **limits}
        node_selector = dict(cfg.node_selector)
        if gpus and plan.resources.gpu_product:
            node_selector[GPU_PRODUCT_LABEL] = plan.resources.gpu_product
        container = client.V1Container(
            name="trainer",
            image=cfg.trainer_image,
            command=[*cfg.trainer_command, "--plan", f"{PLAN_MOUNT}/{PLAN_KEY}"],
            env=env,
            ports=[client.V1ContainerPort(name="rendezvous", container_port=RENDEZVOUS_PORT)]
            if nodes > 1
            else None,
            resources=client.V1ResourceRequirements(limits=limits or None, requests={**requests, **limits}),
            volume_mounts=[
                client.V1VolumeMount(name="plan", mount_path=PLAN_MOUNT, read_only=True),
                client.V1VolumeMount(name="workspace", mount_path="/workspace"),
                client.V1VolumeMount(name="dshm", mount_path="/dev/shm"),
            ],
            working_dir="/workspace",
            security_context=client.V1SecurityContext(
                allow_privilege_escalation=False,
                run_as_non_root=True,
                run_as_user=TRAINER_UID,
                run_as_group=TRAINER_UID,
            ),
        )
        pod = client.V1PodSpec(
            restart_policy="Never",
            # The deadline is the pod's, not the Job's: a pod's deadline counts from when it starts on a
            # node, so time spent Pending for free GPUs is not training time. (Each retried pod gets it anew;
            # the operator's own timeout bounds the whole run.)
            active_deadline_seconds=timeout_seconds,
            # A stopped pod saves and pushes its last checkpoint before SIGKILL (finetune_training.stop).
            termination_grace_period_seconds=cfg.termination_grace_period_seconds,
            security_context=client.V1PodSecurityContext(fs_group=TRAINER_UID),
            containers=[container],
            node_selector=node_selector or None,
            tolerations=[client.V1Toleration(**t) for t in cfg.tolerations] or None,
            volumes=[
                client.V1Volume(
                    name="plan",
                    projected=client.V1ProjectedVolumeSource(
                        sources=[
                            client.V1VolumeProjection(
                                downward_api=client.V1DownwardAPIProjection(
                                    items=[
                                        client.V1DownwardAPIVolumeFile(
                                            path=PLAN_KEY,
                                            field_ref=client.V1ObjectFieldSelector(
                                                field_path=f"metadata.annotations['{PLAN_ANNOTATION}']"
                                            ),
                                        )
                                    ]
                                )
                            )
                        ]
                    ),
                ),
                client.V1Volume(name="workspace", empty_dir=client.V1EmptyDirVolumeSource()),
                # PyTorch data loaders share tensors through /dev/shm; the default 64 MiB is too small.
                # Memory-backed, so bounded: it counts against the pod's memory.
                client.V1Volume(
                    name="dshm",
                    empty_dir=client.V1EmptyDirVolumeSource(medium="Memory", size_limit=cfg.shm_size_limit),
                ),
            ],
            automount_service_account_token=False,
            subdomain=name if nodes > 1 else None,
            affinity=_one_pod_per_node(name) if nodes > 1 else None,
        )
        job_labels = {**labels, KUEUE_QUEUE_LABEL: target.queue} if target.queue else labels
        return client.V1Job(
            metadata=client.V1ObjectMeta(name=name, labels=job_labels, owner_references=[owner]),
            spec=client.V1JobSpec(
                # One node's pod failing ends the whole group's run; the operator retries it as an attempt.
                backoff_limit=cfg.job_backoff_limit if nodes == 1 else 0,
                completion_mode="Indexed" if nodes > 1 else None,
                completions=nodes if nodes > 1 else None,
                parallelism=nodes if nodes > 1 else None,
                # Queued: Kueue unsuspends it when its ClusterQueue has the quota.
                suspend=True if target.queue else None,
                ttl_seconds_after_finished=cfg.job_ttl_seconds_after_finished,
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(
                        labels=labels,
                        annotations={
                            **cfg.pod_annotations,
                            PLAN_ANNOTATION: plan.model_dump_json(by_alias=True, exclude_none=True),
                        },
                    ),
                    spec=pod,
                ),
            ),
        )

    def poll(self, target: JobTarget, ref: WorkRef) -> WorkStatus:
        """Map the Job's conditions and pods onto a WorkState."""
        try:
            # The object, not the `jobs/status` subresource: it carries the same status and needs only `get jobs`.
            watched = self.seen.job(target.namespace, ref.id) if self.seen is not None else None
            job = watched or self.batch.read_namespaced_job(ref.id, target.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return WorkStatus(
                    state=WorkState.FAILED,
                    reason="BackendWorkLost",
                    message=f"Job `{ref.id}` no longer exists (deleted outside the operator)",
                )
            raise api_error(exc, "get", "jobs", target.namespace) from None
        status = job.status or client.V1JobStatus()
        # The Job's own times: it holds its GPUs from its start until it completes or fails.
        started = status.start_time
        for cond in status.conditions or []:
            if cond.status != "True":
                continue
            # SuccessCriteriaMet and FailureTarget come first, while the last pods still terminate; the outcome
            # is already decided then.
            if cond.type in ("Complete", "SuccessCriteriaMet"):
                return WorkStatus(
                    state=WorkState.SUCCEEDED,
                    reason="JobComplete",
                    message="training Job completed",
                    started_at=started,
                    ended_at=status.completion_time or cond.last_transition_time,
                )
            if cond.type in ("Failed", "FailureTarget"):
                reason = "Timeout" if cond.reason == "DeadlineExceeded" else (cond.reason or "JobFailed")
                if (
                    reason == "BackoffLimitExceeded"
                    and self._last_pod_reason(target, ref) == "DeadlineExceeded"
                ):
                    reason = "Timeout"  # the pod's own activeDeadlineSeconds ran out (see `_job`)
                return WorkStatus(
                    state=WorkState.FAILED,
                    reason=reason,
                    message=cond.message or "",
                    started_at=started,
                    ended_at=cond.last_transition_time,
                )
        restarts = status.failed or 0  # failed pods the Job replaced (it has not failed itself)
        if job.spec and job.spec.suspend:
            # Only Kueue suspends our Jobs (the operator deletes them to stop them): waiting for quota, or
            # preempted (its pods stopped and checkpointed; it resumes when admitted again).
            message, preempted = self._kueue_reason(target, job)
            return WorkStatus(
                state=WorkState.QUEUED,
                reason="QueuedInKueue",
                message=message,
                restarts=restarts,
                preempted=preempted,
            )
        if (status.active or 0) > 0 and (status.ready or 0) > 0:
            return WorkStatus(
                state=WorkState.RUNNING, reason="PodRunning", started_at=started, restarts=restarts
            )
        return WorkStatus(
            state=WorkState.QUEUED,
            reason="PodPending",
            message=self._pending_reason(target, ref),
            restarts=restarts,
        )

    def _pending_reason(self, target: JobTarget, ref: WorkRef) -> str:
        """Why the pod waits (e.g. the scheduler's message when no GPU is free)."""
        pods = self._pods(target, ref)
        for pod in pods:
            for cond in (pod.status.conditions if pod.status else None) or []:
                if cond.type == "PodScheduled" and cond.status == "False" and cond.message:
                    return f"waiting for GPUs: {cond.message}"
        return "waiting for the training pod to start"

    def _kueue_reason(self, target: JobTarget, job: client.V1Job) -> tuple[str, bool]:
        """Kueue's own words for why the Job waits, from its Workload (e.g. the ClusterQueue lacks GPUs), and
        whether Kueue preempted it."""
        queue = (job.metadata.labels or {}).get(KUEUE_QUEUE_LABEL) if job.metadata else None
        cluster_queue = self._cluster_queue(target.namespace, queue) if queue else None
        waiting = f"waiting in Kueue LocalQueue `{queue}`" + (
            f" (ClusterQueue `{cluster_queue}`)" if cluster_queue else ""
        )
        uid = job.metadata.uid if job.metadata else None
        workload = self._workload(target.namespace, uid) if uid else None
        if workload is None:
            created = job.metadata.creation_timestamp if job.metadata else None
            if (
                created is not None
                and (datetime.now(UTC) - created).total_seconds() < KUEUE_WORKLOAD_GRACE_SECONDS
            ):
                return "", False  # nothing new to say: the job keeps its message (`submitted Job ...`)
            return (
                f"{waiting}: Kueue has made no Workload for the Job yet (is Kueue installed and managing batch/job?)",
                False,
            )
        conditions = {c.get("type"): c for c in (workload.get("status") or {}).get("conditions") or []}
        evicted = conditions.get("Evicted")
        reserved = conditions.get("QuotaReserved") or {}
        # An Evicted condition, whatever its status now, means the Job had been admitted and Kueue took it back.
        preempted = evicted is not None
        if evicted is not None and evicted.get("status") == "True":
            why = f"{evicted.get('reason')}: {evicted.get('message')}"
            return (
                f"{waiting}: preempted by Kueue ({why}); it resumes from its last checkpoint when admitted again",
                True,
            )
        if reserved.get("message"):
            return f"{waiting}: {reserved['message']}", preempted
        return f"{waiting}: not admitted yet", preempted

    def _cluster_queue(self, namespace: str, queue: str) -> str | None:
        """The ClusterQueue a LocalQueue feeds (whose quota the Job waits for), remembered for a minute; None
        when the LocalQueue does not exist (Kueue's own message then says so)."""
        key = (namespace, queue)
        known = self._cluster_queues.get(key)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        local = self._kueue(
            "get",
            "localqueues",
            namespace,
            lambda version: self.custom.get_namespaced_custom_object(
                KUEUE_GROUP, version, namespace, "localqueues", queue
            ),
        )
        found: str | None = (local.get("spec") or {}).get("clusterQueue") if local else None
        self._cluster_queues[key] = (found, time.monotonic() + 60)
        return found

    def _workload(self, namespace: str, job_uid: str) -> dict[str, Any] | None:
        """The Kueue Workload Kueue made for a Job (labelled with the Job's UID), if any."""
        found = self._kueue(
            "list",
            "workloads",
            namespace,
            lambda version: self.custom.list_namespaced_custom_object(
                KUEUE_GROUP,
                version,
                namespace,
                "workloads",
                label_selector=f"{KUEUE_JOB_UID_LABEL}={job_uid}",
            ),
        )
        items: list[dict[str, Any]] = (found or {}).get("items") or []
        return items[0] if items else None

    @staticmethod
    def _kueue(
        verb: str, resource: str, namespace: str, call: Callable[[str], object]
    ) -> dict[str, Any] | None:
        """A Kueue API answer at the newest version the cluster serves; None when no version has it (the object
        is absent, or Kueue is not installed)."""
        for version in KUEUE_VERSIONS:
            try:
                return dict(call(version))  # type: ignore[call-overload]
            except ApiException as exc:
                if exc.status != 404:
                    raise api_error(exc, verb, f"{resource}.{KUEUE_GROUP}", namespace) from None
        return None

    def _last_pod_reason(self, target: JobTarget, ref: WorkRef) -> str | None:
        pods = self._pods(target, ref)
        return pods[-1].status.reason if pods and pods[-1].status else None

    def _pods(self, target: JobTarget, ref: WorkRef) -> list[client.V1Pod]:
        if self.seen is not None:
            watched = self.seen.pods_of(target.namespace, ref.id)
            if watched:  # none: maybe none yet, maybe the watch lags: ask
                return watched
        try:
            pods = self.core.list_namespaced_pod(target.namespace, label_selector=f"job-name={ref.id}")
        except ApiException as exc:
            raise api_error(exc, "list", "pods", target.namespace) from None
        return sorted(pods.items, key=lambda p: str(p.metadata.creation_timestamp if p.metadata else ""))

    def logs(
        self,
        target: JobTarget,
        ref: WorkRef,
        *,
        follow: bool = False,
        tail: int | None = None,
        cursor: LogCursor | None = None,
    ) -> Iterator[str]:
        """Log lines of the Job's newest pod (the one resuming from the last checkpoint); of node 0's, when the
        run spans several nodes (node 0 alone reports). With `cursor`: the lines after it, in the pod it was in
        and then in each newer one (a pod the Job replaced may have logged its last lines since the last read),
        see `podlogs`."""
        pods = [p for p in self._pods(target, ref) if _completion_index(p) in (None, "0")]
        if cursor is not None and not follow:
            names = [p.metadata.name for p in pods if p.metadata and p.metadata.name]
            return self._logs_after(target.namespace, names, cursor)
        if not pods:
            return iter(())
        pod = pods[-1].metadata.name if pods[-1].metadata else None
        if not pod:
            return iter(())
        try:
            if follow:
                resp = self.core.read_namespaced_pod_log(
                    pod, target.namespace, follow=True, tail_lines=tail, _preload_content=False
                )
                return lines_of(resp.stream())  # type: ignore[attr-defined]
            text = self.core.read_namespaced_pod_log(pod, target.namespace, tail_lines=tail)
        except ApiException as exc:
            if exc.status in (400, 404):  # container not started yet, or pod gone
                return iter(())
            raise api_error(exc, "get", "pods/log", target.namespace) from None
        return iter(text.splitlines())

    def link(self, ref: WorkRef) -> str | None:
        """None: the Job is named in the message already (`kubectl describe job` shows it)."""
        return None

    def _logs_after(self, namespace: str, pods: list[str], cursor: LogCursor) -> Iterator[str]:
        """`pods` oldest first: from the cursor's pod on (the newest alone for a new cursor, or when its pod is
        gone)."""
        todo = pods[pods.index(cursor.pod) :] if cursor.pod in pods else pods[-1:]
        for pod in todo:
            if pod != cursor.pod:
                cursor.pod, cursor.time_ns, cursor.same, cursor.read_at = pod, None, 0, None
            yield from read_since(self.core, namespace, pod, cursor)

    def cancel(self, target: JobTarget, ref: WorkRef) -> None:
        """Delete the Job and its pods; nothing to do when it is gone."""
        try:
            self.batch.delete_namespaced_job(ref.id, target.namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise api_error(exc, "delete", "jobs", target.namespace) from None
