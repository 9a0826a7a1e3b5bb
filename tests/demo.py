"""`make demo`: the whole pipeline on a fresh machine, with no account and no GPU.

It starts the local control plane (kwok), the Hub + Jobs stand-in (serving a tiny model and an Alpaca
dataset it builds and uploads), and the operator (Local backend: training runs as a CPU process), applies
examples/demo/finetunejob.yaml and follows it to Succeeded. The stand-in and the operator keep running
afterwards so you can look around; `make demo-down` stops them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.example_data import DATASETS

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".demo"
BIN = ROOT / ".testbin" / "bin"
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
NAMESPACE = "finetune-demo"
JOB = ROOT / "examples" / "demo" / "finetunejob.yaml"
DATASET = DATASETS / "alpaca.json"
MODEL_REPO = "tester/tiny-chat"
DATASET_REPO = "tester/alpaca-demo"


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m", flush=True)


def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    out = subprocess.run(
        [str(BIN / "kubectl"), "--kubeconfig", str(KUBECONFIG), *args],
        input=input, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if check and out.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(name: str) -> bool:
    pid_file = STATE / f"{name}.pid"
    try:
        os.kill(int(pid_file.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


def start(name: str, argv: list[str], env: dict[str, str]) -> None:
    log = open(STATE / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    (STATE / f"{name}.pid").write_text(str(proc.pid))


def stop(name: str) -> None:
    if alive(name):
        os.killpg(int((STATE / f"{name}.pid").read_text()), signal.SIGTERM)
        print(f"stopped the {name}")
    (STATE / f"{name}.pid").unlink(missing_ok=True)


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not come up; see {STATE}")


def hub_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE") and k != "HF_TOKEN"}
    env.update(
        HF_ENDPOINT=url, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1", KUBECONFIG=str(KUBECONFIG)
    )
    env["PATH"] = f"{BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def up() -> int:
    STATE.mkdir(exist_ok=True)
    say("1/6 local Kubernetes control plane (etcd, kube-apiserver, scheduler, kwok GPU nodes)")
    subprocess.run([str(ROOT / "tests" / "cluster" / "cluster.sh"), "up"], check=True)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/finetunejobs.finetune.dev", "--timeout=60s")
    print(kubectl("get", "nodes", "-L", "nvidia.com/gpu.product"))

    say("2/6 Hugging Face Hub + Jobs stand-in on loopback, with a tiny model and an Alpaca dataset")
    url_file = STATE / "hub.url"
    if not alive("hub"):
        port = free_port()
        url_file.write_text(f"http://127.0.0.1:{port}")
        argv = [sys.executable, "-m", "tests.hub", "--port", str(port), "--data-dir", str(STATE / "hub")]
        start("hub", argv, hub_env(url_file.read_text()))
    hub_url = url_file.read_text()
    wait_http(f"{hub_url}/api/whoami-v2")
    env = hub_env(hub_url)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("HF_", "KUBECONFIG"))})
    for k in [k for k in os.environ if k.endswith("_OFFLINE")]:
        del os.environ[k]
    from huggingface_hub import HfApi

    from finetune_training.tiny import build_tiny_model
    from tests.hub import DEFAULT_TOKEN

    model_dir = build_tiny_model(ROOT / ".cache" / "tiny-model")
    api = HfApi(endpoint=hub_url, token=DEFAULT_TOKEN)
    api.create_repo(MODEL_REPO, exist_ok=True, private=False)
    api.upload_folder(repo_id=MODEL_REPO, folder_path=str(model_dir))
    api.create_repo(DATASET_REPO, repo_type="dataset", exist_ok=True, private=False)
    api.upload_file(path_or_fileobj=str(DATASET), path_in_repo="train.json", repo_id=DATASET_REPO,
                    repo_type="dataset")  # fmt: skip
    print(f"Hub stand-in at {hub_url}: model {MODEL_REPO}, dataset {DATASET_REPO}")

    say("3/6 what the operator will check first: `ftjob validate tester/alpaca-demo --method SFT`")
    subprocess.run([sys.executable, "-m", "finetune_operator.cli.main", "validate", DATASET_REPO, "--method", "SFT"],
                   env=env, check=False)  # fmt: skip

    say("4/6 the operator (kopf), with the Local backend: training runs here, on the CPU")
    metrics_port = 9464
    if not alive("operator"):
        op_env = {
            **env,
            "FTJOB_ENABLED_BACKENDS": json.dumps(["Local", "Kubernetes", "HFJobs"]),
            "FTJOB_HF_ENDPOINT": hub_url,
            "FTJOB_LOCAL_WORKDIR": str(STATE / "runs"),
            "FTJOB_METRICS_PORT": str(metrics_port),
            "FTJOB_POLL_INTERVAL_SECONDS": "2",
            "FTJOB_STATUS_INTERVAL_SECONDS": "2",
            "TRACKIO_DIR": str(STATE / "trackio"),
        }
        argv = [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", NAMESPACE,
                "-m", "finetune_operator.main", "--liveness=http://127.0.0.1:8080/healthz"]  # fmt: skip
        start("operator", argv, op_env)
    wait_http(f"http://127.0.0.1:{metrics_port}/metrics")

    say(f"5/6 kubectl apply -f {JOB.relative_to(ROOT)}  (namespace {NAMESPACE}, token in Secret hf-token)")
    if NAMESPACE not in kubectl("get", "ns", "-o", "name"):
        kubectl("create", "namespace", NAMESPACE)
    secret = kubectl("create", "secret", "generic", "hf-token", "-n", NAMESPACE,
                     f"--from-literal=token={DEFAULT_TOKEN}", "--dry-run=client", "-o", "yaml")  # fmt: skip
    kubectl("apply", "-f", "-", input=secret)
    kubectl("delete", "ftj", "demo-sft", "-n", NAMESPACE, "--ignore-not-found", "--timeout=60s")
    kubectl("apply", "-n", NAMESPACE, "-f", str(JOB))
    code = subprocess.run(
        [sys.executable, "-m", "finetune_operator.cli.main", "watch", "demo-sft", "-n", NAMESPACE,
         "--kubeconfig", str(KUBECONFIG), "--timeout", "900"],
        env=env, check=False,
    ).returncode  # fmt: skip

    say("6/6 the result")
    print(kubectl("get", "ftj", "-n", NAMESPACE))
    obj = json.loads(kubectl("get", "ftj", "demo-sft", "-n", NAMESPACE, "-o", "json"))
    status = obj.get("status", {})
    outputs = status.get("outputs", {})
    print(f"phase:        {status.get('phase')}  ({status.get('message', '')})")
    print(f"model:        {outputs.get('model')}")
    for url in outputs.get("gguf", []):
        print(f"GGUF:         {url}")
    print(f"Hub store:    {STATE / 'hub'}  (the stand-in's files on disk)")
    print(f"trackio:      {outputs.get('trackio') or (status.get('progress') or {}).get('trackioUrl')}")
    print(f"run folder:   {STATE / 'runs' / NAMESPACE}  (plan.json, train.log)")
    print(f"metrics:      http://127.0.0.1:{metrics_port}/metrics  e.g.")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(("finetune_operator_jobs{", "finetune_operator_job_training_loss")):
                print(f"              {line}")
    print(
        "\nTry: ftjob status demo-sft -n finetune-demo   |   kubectl describe ftj demo-sft -n finetune-demo"
    )
    print("The stand-in and the operator keep running; `make demo-down` stops them and the cluster.")
    return 0 if code == 0 and status.get("phase") == "Succeeded" else 1


def down() -> int:
    stop("operator")
    stop("hub")
    subprocess.run([str(ROOT / "tests" / "cluster" / "cluster.sh"), "down"], check=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--down", action="store_true", help="stop the demo's processes and cluster")
    args = parser.parse_args(argv)
    return down() if args.down else up()


if __name__ == "__main__":
    raise SystemExit(main())
