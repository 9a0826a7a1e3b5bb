"""How one operator process keeps up with N FineTuneJobs, next to the API server's own floor, in one run.

    .venv/bin/python benchmarks/operator_scale.py [N] [--running] [--rounds K]   (default 200; starts the local
    control plane)

On the local control plane (kwok nodes) and the Hub stand-in, in a fresh namespace:

1. the floor: N batch/v1 Jobs (suspended, so nothing runs) created by one `kubectl create`, three times
   (the median counts);
2. the operator (a separate `kopf run` process, Kubernetes backend) and N FineTuneJobs created suspended by
   one `kubectl create`: the time until every one is planned (phase `Suspended`: validated, planned,
   estimated); then all deleted;
3. N FineTuneJobs created by one `kubectl create`: the time until every one is submitted (`backendRef` set:
   validated, planned, its Job created). The jobs name a Kueue queue, so, like the floor's, the Jobs the
   operator creates wait suspended (no Kueue runs here to admit them): both sides measure creating N
   suspended Jobs. With `--running` they name no queue, and the cluster starts every Job's pod while the
   operator submits (the Job controller, the scheduler and kwok share the same 2 cores): a figure for the
   whole cluster, not the operator alone;
4. every job deleted: the time until all are gone (their Jobs with them), and the operator's memory then;
5. with `--rounds K`, steps 3 and 4 K-1 more times, and the operator's memory once all are gone after each
   round (flat from round to round: nothing is kept per finished job).

The benchmark follows the jobs through one watch (a list of N objects every second would load the API server
it measures). It prints one table: the times and their ratio to the floor, the operator's peak and final RSS,
and the API server requests per job (writes: create/update/patch/delete; reads: get/list/watch), counted from
the API server's own `apiserver_request_total`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.example_data import DATASETS  # noqa: E402
from tests.hub import DEFAULT_TOKEN, client_config, client_env, start_hub  # noqa: E402

KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
MODEL = "tester/bench-tiny-chat"
DATASET = "tester/bench-alpaca"
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE"}
READ_VERBS = {"GET", "LIST", "WATCH"}
_REQUESTS = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


def kubectl(*args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    cmd = [str(ROOT / ".testbin" / "bin" / "kubectl"), *args]
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, check=False, timeout=600)
    if done.returncode:
        raise RuntimeError(f"kubectl {' '.join(args[:3])}: {done.stderr[-2000:]}")
    return done.stdout


class Requests(Counter[tuple[str, str]]):
    """Requests the API server has answered so far, by verb and resource (all clients; deltas are what matters)."""

    @classmethod
    def now(cls) -> Requests:
        counted = cls()
        for line in kubectl("get", "--raw", "/metrics").splitlines():
            found = _REQUESTS.match(line)
            if found:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"]))
                resource = "/".join(filter(None, (labels.get("resource"), labels.get("subresource"))))
                counted[(labels.get("verb", ""), resource)] += int(float(found["value"]))
        return counted

    def writes(self) -> float:
        return sum(v for (verb, _), v in self.items() if verb in WRITE_VERBS)

    def reads(self) -> float:
        return sum(v for (verb, _), v in self.items() if verb in READ_VERBS)

    def top(self, n: int, per: int) -> str:
        """The most frequent requests, per job: e.g. `PATCH finetunejobs/status 1.0`."""
        common = [(k, v) for k, v in self.most_common(n) if v > 0]
        return ", ".join(f"{verb} {resource} {v / per:.1f}" for (verb, resource), v in common)


def timed(action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def jobs_left(namespace: str) -> bool:
    """Whether any batch/v1 Job is left in the namespace (one item asked for, not a list of N)."""
    page = json.loads(kubectl("get", "--raw", f"/apis/batch/v1/namespaces/{namespace}/jobs?limit=1"))
    return bool(page.get("items"))


def delete_all(namespace: str, watched: Watched, limit: float) -> float:
    """Delete every FineTuneJob; the seconds until they and their Jobs are gone (the garbage collector
    removes what a FineTuneJob owns)."""
    start = time.monotonic()
    kubectl("delete", "ftj", "--all", "-n", namespace, "--wait=false")
    watched.wait_gone(limit)
    while jobs_left(namespace) and time.monotonic() - start < limit:
        time.sleep(0.5)
    return time.monotonic() - start


class Watched:
    """The FineTuneJobs of one namespace as one watch reports them, kept in a dict (name → object)."""

    def __init__(self, namespace: str) -> None:
        from kubernetes import client, config

        self.namespace = namespace
        self.objects: dict[str, dict[str, Any]] = {}
        self.api = client.CustomObjectsApi(config.new_client_from_config(str(KUBECONFIG)))
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        from kubernetes import watch

        version = None
        while True:
            try:
                for event in watch.Watch().stream(
                    self.api.list_namespaced_custom_object, "finetune.dev", "v1alpha1", self.namespace,
                    "finetunejobs", resource_version=version, timeout_seconds=240,
                ):  # fmt: skip
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "DELETED":
                        self.objects.pop(obj["metadata"]["name"], None)
                    else:
                        self.objects[obj["metadata"]["name"]] = obj
            except Exception:  # an expired version: start again from a fresh list
                version = None
                time.sleep(1.0)

    def wait(self, n: int, done: Callable[[dict[str, Any]], bool], limit: float) -> None:
        """Return once `done` holds for N FineTuneJobs."""
        start, ready = time.monotonic(), 0
        while time.monotonic() - start < limit:
            ready = sum(1 for obj in list(self.objects.values()) if done(obj))
            if ready >= n:
                return
            time.sleep(0.2)
        raise TimeoutError(f"only {ready} of {n} FineTuneJobs got there in {limit:.0f} s")

    def wait_gone(self, limit: float) -> None:
        """Return once no FineTuneJob is left (or after `limit` seconds)."""
        start = time.monotonic()
        while self.objects and time.monotonic() - start < limit:
            time.sleep(0.2)


def rss_mb(pid: int) -> tuple[float, float]:
    """The process's peak and current resident memory (MB)."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {k: float(v.split()[0]) / 1024 for k, v in re.findall(r"^(VmHWM|VmRSS):\s+(.*)$", status, re.M)}
    return values.get("VmHWM", 0.0), values.get("VmRSS", 0.0)


def _cpu(stat: str) -> float:
    """User + system CPU seconds from the text of a `/proc/<pid>/stat`."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far."""
    return _cpu(Path(f"/proc/{pid}/stat").read_text())


def cpu_by_process() -> dict[str, float]:
    """CPU seconds so far of every process on this machine, by command name (the control plane's processes,
    the operator's `python`, kubectl): where a phase's time goes on a machine they share."""
    used: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        used[name] = used.get(name, 0.0) + _cpu(text)
    return used


def jobs_yaml(namespace: str, n: int) -> str:
    return yaml.safe_dump_all(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"floor-{i:05d}", "namespace": namespace},
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}],
                    }
                },
            },
        }
        for i in range(n)
    )


def finetunejobs_yaml(namespace: str, n: int, suspend: bool, queue: str | None) -> str:
    return yaml.safe_dump_all(
        {
            "apiVersion": "finetune.dev/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": f"bench-{i:05d}", "namespace": namespace},
            "spec": {
                "model": {"name": MODEL},
                "dataset": {"name": DATASET, "conversion": "Alpaca"},
                "method": "SFT",
                "backend": "Kubernetes",
                "hyperparameters": {"maxSteps": 10},
                "tokenSecretRef": {"name": "hf-token"},
                "suspend": suspend,
                **({"queue": queue} if queue else {}),
            },
        }
        for i in range(n)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=200, help="FineTuneJobs (default 200)")
    parser.add_argument("--limit", type=float, default=1800, help="seconds to wait for each phase")
    parser.add_argument(
        "--running", action="store_true", help="submit Jobs that start at once (no queue holds them)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="submit and delete the N jobs this many times, printing the RSS once all are gone after each "
        "(flat from round to round: nothing is kept per finished job)",
    )
    args = parser.parse_args(argv)
    n = args.n

    subprocess.run([str(ROOT / "tests" / "cluster" / "cluster.sh"), "up"], check=True, timeout=900)
    # An earlier run's namespace still being emptied (its Jobs, Events, Secrets) would load the API server
    # while this run measures it.
    for _ in range(300):
        if not any(
            n.startswith("namespace/bench-") for n in kubectl("get", "namespaces", "-o", "name").split()
        ):
            break
        if _ == 0:
            print("[bench] waiting for an earlier run's namespace to be deleted", flush=True)
        time.sleep(2.0)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    kubectl(
        "create", "secret", "generic", "hf-token", "-n", namespace, f"--from-literal=token={DEFAULT_TOKEN}"
    )

    from finetune_training.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp, start_hub(Path(tmp) / "hub") as hub:
        with client_config(hub):
            from huggingface_hub import HfApi

            api = HfApi(endpoint=hub.url, token=DEFAULT_TOKEN)
            api.create_repo(MODEL, exist_ok=True)
            api.upload_folder(
                repo_id=MODEL, folder_path=str(build_tiny_model(ROOT / ".cache" / "tiny-model"))
            )
            api.create_repo(DATASET, repo_type="dataset", exist_ok=True)
            api.upload_file(
                repo_id=DATASET, repo_type="dataset", path_or_fileobj=str(DATASETS / "alpaca.json"),
                path_in_repo="alpaca.json",
            )  # fmt: skip

        print(f"[bench] floor: {n} batch/v1 Jobs in one `kubectl create` (three times)", flush=True)
        floors = []
        for _ in range(3):
            floors.append(timed(lambda: kubectl("create", "-f", "-", stdin=jobs_yaml(namespace, n))))
            kubectl("delete", "jobs", "--all", "-n", namespace, "--wait=false")
            while kubectl("get", "jobs", "-n", namespace, "-o", "name").strip():  # gone before what follows
                time.sleep(1.0)
        floor = statistics.median(floors)
        queue = None if args.running else "bench"

        env = {
            **client_env(hub),
            "KUBECONFIG": str(KUBECONFIG),
            "FTJOB_ENABLED_BACKENDS": json.dumps(["Kubernetes"]),
            "FTJOB_HF_ENDPOINT": hub.url,
            "FTJOB_METRICS_PORT": "0",
            "FTJOB_TRAINER_IMAGE": "ghcr.io/finetune-operator/trainer:bench",
            "FTJOB_EVENTS_SIGNING_KEY": "bench",
        }
        operator = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", f"--namespace={namespace}", "-m",
             "finetune_operator.main"],
            env=env, stdout=subprocess.DEVNULL, stderr=(Path(tmp) / "operator.log").open("w"),
        )  # fmt: skip
        watched = Watched(namespace)
        try:
            time.sleep(3)
            base, base_cpu = Requests.now(), cpu_seconds(operator.pid)
            print(f"[bench] operator: {n} FineTuneJobs created suspended, until all are planned", flush=True)
            start = time.monotonic()
            kubectl("create", "-f", "-", stdin=finetunejobs_yaml(namespace, n, True, queue))
            watched.wait(n, lambda o: o.get("status", {}).get("phase") == "Suspended", args.limit)
            planned = time.monotonic() - start
            at_planned, planned_cpu = Requests.now(), cpu_seconds(operator.pid)
            print(f"[bench] deleting all {n} (nothing was submitted), until all are gone", flush=True)
            start = time.monotonic()
            kubectl("delete", "ftj", "--all", "-n", namespace, "--wait=false")
            watched.wait_gone(args.limit)
            emptied = time.monotonic() - start
            held = "running at once" if args.running else "held by a queue"
            print(f"[bench] {n} FineTuneJobs created (Jobs {held}), until all are submitted", flush=True)
            before, before_cpu, machine = Requests.now(), cpu_seconds(operator.pid), cpu_by_process()
            start = time.monotonic()
            kubectl("create", "-f", "-", stdin=finetunejobs_yaml(namespace, n, False, queue))
            watched.wait(n, lambda o: bool(o.get("status", {}).get("backendRef")), args.limit)
            submitted = time.monotonic() - start
            at_submitted, submitted_cpu = Requests.now(), cpu_seconds(operator.pid)
            machine = {k: v - machine.get(k, 0.0) for k, v in cpu_by_process().items()}
            peak, current = rss_mb(operator.pid)
            reasons = Counter(
                kubectl(
                    "get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=FineTuneJob",
                    "-o", "jsonpath={.items[*].reason}",
                ).split()
            )  # fmt: skip
            print(f"[bench] deleting all {n} (and their Jobs), until all are gone", flush=True)
            gone = delete_all(namespace, watched, args.limit)
            time.sleep(5)  # what the operator still holds once the jobs are gone
            _, after = rss_mb(operator.pid)
            rounds = [after]
            for number in range(2, args.rounds + 1):
                print(f"[bench] round {number}: {n} created, all submitted, all deleted", flush=True)
                kubectl("create", "-f", "-", stdin=finetunejobs_yaml(namespace, n, False, queue))
                watched.wait(n, lambda o: bool(o.get("status", {}).get("backendRef")), args.limit)
                delete_all(namespace, watched, args.limit)
                time.sleep(5)
                rounds.append(rss_mb(operator.pid)[1])
        finally:
            # The jobs go while the operator runs: one that holds its finalizer (work outside the cluster)
            # would otherwise keep the namespace Terminating.
            if operator.poll() is None and watched.objects:
                kubectl("delete", "ftj", "--all", "-n", namespace, "--wait=false")
                watched.wait_gone(600)
            operator.terminate()
            operator.wait(timeout=60)
            kubectl("delete", "namespace", namespace, "--wait=false")

    rows = [
        ("floor: N Job creates (median of 3)", f"{floor:.1f} s", "1.0x"),
        ("operator: N created suspended, all planned", f"{planned:.1f} s", f"{planned / floor:.1f}x"),
        (f"operator: N created, all submitted ({held})", f"{submitted:.1f} s", f"{submitted / floor:.1f}x"),
        ("operator: all deleted (planned only / with Jobs)", f"{emptied:.1f} / {gone:.1f} s", ""),
        ("operator CPU to planned / to submitted",
         f"{planned_cpu - base_cpu:.1f} / {submitted_cpu - before_cpu:.1f} s", ""),
        ("operator RSS: peak / at submitted / all gone", f"{peak:.0f} / {current:.0f} / {after:.0f} MB", ""),
        ("operator RSS all gone, by round", " / ".join(f"{r:.0f}" for r in rounds) + " MB", ""),
        ("API writes per job to planned / to submitted",
         f"{(at_planned.writes() - base.writes()) / n:.1f} / {(at_submitted.writes() - before.writes()) / n:.1f}",
         ""),
        ("API reads per job to planned / to submitted",
         f"{(at_planned.reads() - base.reads()) / n:.1f} / {(at_submitted.reads() - before.reads()) / n:.1f}",
         ""),
    ]  # fmt: skip
    print(f"\nN = {n} FineTuneJobs, one operator process, Kubernetes backend, kwok nodes")
    width = max(len(r[0]) for r in rows)
    for label, value, ratio in rows:
        print(f"  {label:<{width}}  {value:>14}  {ratio}")
    print(f"  requests per job to planned:   {Requests(at_planned - base).top(8, n)}")
    print(f"  requests per job to submitted: {Requests(at_submitted - before).top(8, n)}")
    busiest = sorted(machine.items(), key=lambda kv: -kv[1])[:8]
    print("  CPU s by process to submitted: " + ", ".join(f"{k} {v:.1f}" for k, v in busiest))
    print(
        "  FineTuneJob Events per job:    " + ", ".join(f"{r} {c / n:.1f}" for r, c in reasons.most_common())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
