"""The test harness's kubelet for training pods: runs a kwok pod's container command as a local process.

kwok schedules pods onto fake nodes but runs nothing. For pods annotated `RUNNER_ANNOTATION` (cluster.sh
makes kwok's pod-complete stage skip them), this runner materialises the pod's ConfigMap/Secret volumes
into a temp dir, rewrites mount paths, resolves env (value, secretKeyRef, configMapKeyRef, fieldRef),
runs `command` + `args` with the test venv on PATH, serves the output as the pod's log through a kwok
`Logs` object, and on exit writes the pod's phase and the container's exit code, so the Job controller
counts the pod like a real kubelet's. A deleted pod's process gets SIGTERM, then SIGKILL after the grace
period.

Pods that mount their ServiceAccount token (the operator's own Deployment) get what a kubelet gives them:
a bound token from the TokenRequest API, the cluster CA and the namespace, at the fixed in-cluster path
(`/var/run/secrets/kubernetes.io/serviceaccount`, bind-mounted in a private mount namespace, so the client
library's own in-cluster configuration reads it), and `KUBERNETES_SERVICE_HOST`/`PORT` pointing at the
apiserver (there is no kube-proxy to route the `kubernetes` Service).

Pods with a `subdomain` (the pods of a multi-node Indexed Job behind their headless Service) get what the
cluster's DNS would give them: an `/etc/hosts`, bind-mounted the same way, naming every pod of their Job
(`<job>-<index>.<subdomain>`, with the namespace's `svc` forms) at 127.0.0.1, where all of them run.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

RUNNER_ANNOTATION = "podrunner.finetune.dev/run"
# What the trainer image's own environment would set; the tests' process sets these for everything.
IMAGE_ENV = ("HF_HUB_DISABLE_XET", "TOKENIZERS_PARALLELISM", "DO_NOT_TRACK")
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def can_bind_mount() -> bool:
    """Whether this host lets the runner give a process a private mount namespace (root, `unshare -m`)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@dataclass
class _Run:
    pod: str
    proc: subprocess.Popen[bytes]
    root: Path
    started: str
    grace: int
    term_at: float | None = None
    done: bool = False
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "output.log"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _projection(data: dict[str, Any], items: Any) -> list[tuple[str, str]]:
    """(key, file name) pairs of a ConfigMap or Secret volume: every key, or the listed `items`."""
    if not items:
        return [(key, key) for key in data]
    return [(item.key, item.path) for item in items if item.key in data]


def _pump(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Copy the process's output into `log` in the CRI log format kwok serves (`<time> stdout F <line>`)."""
    assert proc.stdout is not None
    with log.open("ab") as out:
        for line in proc.stdout:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
            out.write(stamp + b" stdout F " + line.rstrip(b"\n") + b"\n")
            out.flush()


class PodRunner:
    """Poll `namespace` for annotated, running pods and run each one's first container locally."""

    def __init__(self, kubeconfig: Path, namespace: str, workdir: Path, interval: float = 0.5) -> None:
        api = config.new_client_from_config(str(kubeconfig))
        self.server = urlsplit(api.configuration.host)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.workdir = workdir
        self.interval = interval
        self.runs: dict[str, _Run] = {}  # by pod uid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="podrunner", daemon=True)

    @property
    def operator_env(self) -> dict[str, str]:
        """Operator settings that mark its training pods for this runner."""
        return {"FTJOB_POD_ANNOTATIONS": json.dumps({RUNNER_ANNOTATION: "true"})}

    def start(self) -> PodRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for run in self.runs.values():
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except ApiException as exc:  # the control plane hiccuped; the next tick retries
                print(f"[podrunner] API error: {exc.status} {exc.reason}", file=sys.stderr)
            self._stop.wait(self.interval)

    def _tick(self) -> None:
        pods = {p.metadata.uid: p for p in self.core.list_namespaced_pod(self.namespace).items}
        for uid, pod in pods.items():
            annotations = pod.metadata.annotations or {}
            if RUNNER_ANNOTATION not in annotations or uid in self.runs:
                continue
            if pod.metadata.deletion_timestamp or not pod.spec.node_name:
                continue
            if (pod.status.phase if pod.status else None) != "Running":
                continue
            self.runs[uid] = self._launch(pod)
        for uid, run in self.runs.items():
            if run.done:
                continue
            pod = pods.get(uid)
            gone = pod is None or pod.metadata.deletion_timestamp is not None
            code = run.proc.poll()
            if gone and code is None:
                # The pod was deleted: stop the process as a kubelet would.
                if run.term_at is None:
                    run.term_at = time.monotonic()
                    run.proc.send_signal(signal.SIGTERM)
                elif time.monotonic() - run.term_at > run.grace:
                    run.proc.kill()
                continue
            if code is None:
                continue
            run.done = True
            # A signal's death reads as 128 + the signal, as a container runtime reports it.
            exit_code = 128 - code if code < 0 else code
            if not gone:
                self._finish(run, exit_code)
            elif pod is not None:
                # A deleted pod whose process ended: as a kubelet does, report the end and remove the object
                # at once, not when the grace period would have run out.
                self._finish(run, exit_code)
                self.core.delete_namespaced_pod(run.pod, self.namespace, grace_period_seconds=0)

    def _launch(self, pod: Any) -> _Run:
        name = pod.metadata.name
        root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        mounts: dict[str, Path] = {}
        volumes = {v.name: v for v in pod.spec.volumes or []}
        container = pod.spec.containers[0]
        for m in container.volume_mounts or []:
            target = root / "volumes" / m.name
            self._materialise(pod, volumes.get(m.name), target)
            mounts[m.mount_path] = target

        def local(value: str) -> str:
            # Longest mount path first, so /workspace/x never matches a shorter prefix by accident.
            for path in sorted(mounts, key=len, reverse=True):
                if value == path or value.startswith(path.rstrip("/") + "/"):
                    return str(mounts[path]) + value[len(path) :]
            return value

        env = {
            # The image's own programs (kopf, ftjob) are the test venv's.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "HOME": str(root),
            "PYTHONUNBUFFERED": "1",
            **{k: os.environ[k] for k in IMAGE_ENV if k in os.environ},
        }
        for var in container.env or []:
            env[var.name] = local(self._env_value(pod, var))
        argv = [local(a) for a in [*(container.command or []), *(container.args or [])]]
        binds: list[tuple[Path, str]] = []
        if SERVICE_ACCOUNT_DIR in mounts:
            # In-cluster configuration, as a kubelet and kube-proxy provide it.
            env["KUBERNETES_SERVICE_HOST"] = self.server.hostname or "127.0.0.1"
            env["KUBERNETES_SERVICE_PORT"] = str(self.server.port or 443)
            os.makedirs(SERVICE_ACCOUNT_DIR, exist_ok=True)
            binds.append((mounts[SERVICE_ACCOUNT_DIR], SERVICE_ACCOUNT_DIR))
        if pod.spec.subdomain:
            hosts = root / "hosts"
            hosts.write_text(self._hosts(pod))
            binds.append((hosts, "/etc/hosts"))
        if binds:
            # Each bind in a private mount namespace: `mount --bind SRC DST` pairs, then the command.
            script = (
                'while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; shift; exec "$@"'
            )
            pairs = [str(x) for src, dst in binds for x in (src, dst)]
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *pairs, "--",
                    *argv]  # fmt: skip
        cwd = local(container.working_dir) if container.working_dir else str(root)
        log = root / "output.log"
        log.touch()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=_pump, args=(proc, log), daemon=True).start()
        self._serve_logs(name, container.name, log)
        grace = pod.spec.termination_grace_period_seconds
        return _Run(name, proc, root, _now(), 30 if grace is None else int(grace))

    def _hosts(self, pod: Any) -> str:
        """The cluster DNS's answers for the pod's subdomain: every pod of its Indexed Job, here."""
        namespace, subdomain = self.namespace, pod.spec.subdomain
        job_name = (pod.metadata.labels or {}).get("batch.kubernetes.io/job-name", "")
        job = self.batch.read_namespaced_job(job_name, namespace)
        lines = ["127.0.0.1 localhost"]
        for index in range(job.spec.completions or 1):
            host = f"{job_name}-{index}.{subdomain}"
            lines.append(f"127.0.0.1 {host} {host}.{namespace}.svc {host}.{namespace}.svc.cluster.local")
        return "\n".join(lines) + "\n"

    def _materialise(self, pod: Any, volume: Any, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        if volume is None:
            return
        if volume.config_map is not None:
            self._write_config_map(volume.config_map.name, volume.config_map.items, target)
        elif volume.secret is not None:
            self._write_secret(volume.secret.secret_name, volume.secret.items, target)
        elif volume.projected is not None:
            for source in volume.projected.sources or []:
                if source.service_account_token is not None:
                    path = target / source.service_account_token.path
                    path.write_text(self._service_account_token(pod, source.service_account_token))
                elif source.config_map is not None:
                    self._write_config_map(source.config_map.name, source.config_map.items, target)
                elif source.secret is not None:
                    self._write_secret(source.secret.name, source.secret.items, target)
                elif source.downward_api is not None:
                    for item in source.downward_api.items or []:
                        field = item.field_ref.field_path if item.field_ref else ""
                        (target / item.path).write_text(self._field(pod, field))
        # emptyDir and the rest: an empty directory.

    def _write_config_map(self, name: str, items: Any, target: Path) -> None:
        data = self.core.read_namespaced_config_map(name, self.namespace).data or {}
        for key, path in _projection(data, items):
            (target / path).write_text(data[key])

    def _write_secret(self, name: str, items: Any, target: Path) -> None:
        data = self.core.read_namespaced_secret(name, self.namespace).data or {}
        for key, path in _projection(data, items):
            (target / path).write_bytes(base64.b64decode(data[key]))

    def _service_account_token(self, pod: Any, source: Any) -> str:
        """A token bound to the pod, as the kubelet requests one for a projected token volume."""
        spec = client.V1TokenRequestSpec(
            audiences=[source.audience] if source.audience else [],
            expiration_seconds=source.expiration_seconds or 3607,
            bound_object_ref=client.V1BoundObjectReference(
                api_version="v1", kind="Pod", name=pod.metadata.name, uid=pod.metadata.uid
            ),
        )
        account = pod.spec.service_account_name or "default"
        answer = self.core.create_namespaced_service_account_token(
            account, self.namespace, client.AuthenticationV1TokenRequest(spec=spec)
        )
        return str(answer.status.token)

    def _field(self, pod: Any, field_path: str) -> str:
        raw = client.ApiClient().sanitize_for_serialization(pod)
        # `metadata.annotations['key']` (or labels): one map entry, whose key may hold dots.
        path, _, key = field_path.partition("['")
        value: Any = raw
        for part in path.split("."):
            value = (value or {}).get(part)
        if key:
            value = (value or {}).get(key.rstrip("']"))
        return "" if value is None else str(value)

    def _env_value(self, pod: Any, var: Any) -> str:
        if var.value_from is None:
            return str(var.value or "")
        src = var.value_from
        if src.secret_key_ref is not None:
            secret = self.core.read_namespaced_secret(src.secret_key_ref.name, self.namespace)
            return base64.b64decode((secret.data or {})[src.secret_key_ref.key]).decode()
        if src.config_map_key_ref is not None:
            cm = self.core.read_namespaced_config_map(src.config_map_key_ref.name, self.namespace)
            return str((cm.data or {})[src.config_map_key_ref.key])
        if src.field_ref is not None:
            return self._field(pod, src.field_ref.field_path)
        return ""

    def _serve_logs(self, pod: str, container: str, log: Path) -> None:
        body = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {"name": pod, "namespace": self.namespace},
            "spec": {"logs": [{"containers": [container], "logsFile": str(log), "follow": True}]},
        }
        self.custom.create_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", self.namespace, "logs", body)

    def _finish(self, run: _Run, code: int) -> None:
        """Write the pod's end as a kubelet would: the phase and the container's exit code."""
        pod = self.core.read_namespaced_pod(run.pod, self.namespace)
        container = pod.spec.containers[0]
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {
                        "terminated": {
                            "exitCode": code,
                            "reason": "Completed" if code == 0 else "Error",
                            "startedAt": run.started,
                            "finishedAt": _now(),
                        }
                    },
                }
            ],
        }
        self.core.patch_namespaced_pod_status(run.pod, self.namespace, {"status": status})

    def cleanup(self) -> None:
        for run in self.runs.values():
            shutil.rmtree(run.root, ignore_errors=True)
