"""The test harness's kubelet for training pods: runs a kwok pod's container command as a local process.

kwok schedules pods onto fake nodes but runs nothing. For pods annotated `RUNNER_ANNOTATION` (cluster.sh
makes kwok's pod-complete stage skip them), this runner materialises the pod's ConfigMap/Secret volumes
into a temp dir, rewrites mount paths, resolves env (value, secretKeyRef, configMapKeyRef, fieldRef),
runs `command` + `args` with the test venv on PATH, serves the output as the pod's log through a kwok
`Logs` object, and on exit writes the pod's phase and the container's exit code, so the Job controller
counts the pod like a real kubelet's. A deleted pod's process gets SIGTERM, then SIGKILL after the grace
period.
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

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

RUNNER_ANNOTATION = "podrunner.finetune.dev/run"
# What the trainer image's own environment would set; the tests' process sets these for everything.
IMAGE_ENV = ("HF_HUB_DISABLE_XET", "TOKENIZERS_PARALLELISM", "DO_NOT_TRACK")


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
        self.core = client.CoreV1Api(api)
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
            if not gone:
                # A signal's death reads as 128 + the signal, as a container runtime reports it.
                self._finish(run, 128 - code if code < 0 else code)

    def _launch(self, pod: Any) -> _Run:
        name = pod.metadata.name
        root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        mounts: dict[str, Path] = {}
        volumes = {v.name: v for v in pod.spec.volumes or []}
        container = pod.spec.containers[0]
        for m in container.volume_mounts or []:
            target = root / "volumes" / m.name
            self._materialise(volumes.get(m.name), target)
            mounts[m.mount_path] = target

        def local(value: str) -> str:
            # Longest mount path first, so /workspace/x never matches a shorter prefix by accident.
            for path in sorted(mounts, key=len, reverse=True):
                if value == path or value.startswith(path.rstrip("/") + "/"):
                    return str(mounts[path]) + value[len(path) :]
            return value

        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "HOME": str(root),
            "PYTHONUNBUFFERED": "1",
            **{k: os.environ[k] for k in IMAGE_ENV if k in os.environ},
        }
        for var in container.env or []:
            env[var.name] = local(self._env_value(pod, var))
        argv = [local(a) for a in [*(container.command or []), *(container.args or [])]]
        cwd = local(container.working_dir) if container.working_dir else str(root)
        log = root / "output.log"
        log.touch()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=_pump, args=(proc, log), daemon=True).start()
        self._serve_logs(name, container.name, log)
        grace = pod.spec.termination_grace_period_seconds
        return _Run(name, proc, root, _now(), 30 if grace is None else int(grace))

    def _materialise(self, volume: Any, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        if volume is None:
            return
        if volume.config_map is not None:
            cm = self.core.read_namespaced_config_map(volume.config_map.name, self.namespace)
            for key, value in (cm.data or {}).items():
                (target / key).write_text(value)
        elif volume.secret is not None:
            secret = self.core.read_namespaced_secret(volume.secret.secret_name, self.namespace)
            for key, value in (secret.data or {}).items():
                (target / key).write_bytes(base64.b64decode(value))
        # emptyDir and the rest: an empty directory.

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
            raw = client.ApiClient().sanitize_for_serialization(pod)
            value: Any = raw
            for part in src.field_ref.field_path.split("."):
                value = (value or {}).get(part)
            return "" if value is None else str(value)
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
