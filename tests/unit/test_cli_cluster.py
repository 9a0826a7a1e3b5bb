"""`ftjob status|logs|watch`: rendering, the watch loop and log sources, without a cluster."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetune_operator.api.status import (
    BackendRef,
    Condition,
    FineTuneJobStatus,
    MethodVerdict,
    Outputs,
    Phase,
    PlanSummary,
    Progress,
    ValidationSummary,
    Verdict,
)
from finetune_operator.backends.hfjobs import HFJobsBackend
from finetune_operator.backends.kubernetes import lines_of
from finetune_operator.backends.local import LocalBackend
from finetune_operator.backends.registry import REGISTRY, build_backends, for_kind
from finetune_operator.cli.cluster import CliError, connect, read_logs, watch
from finetune_operator.cli.main import main
from finetune_operator.cli.status_view import (
    format_duration,
    render_output,
    render_status,
    spoken_duration,
    summary_line,
    watch_line,
)
from finetune_operator.config import OperatorConfig
from finetune_training.events import DataRows
from finetune_training.plan import PeftMode

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def running_status() -> FineTuneJobStatus:
    return FineTuneJobStatus(
        phase=Phase.RUNNING,
        message="training on HFJobs/a10g-large",
        start_time="2025-06-01T11:50:00Z",
        attempts=1,
        conditions=[
            Condition(
                type="DatasetValidated",
                status="True",
                reason="Ready",
                last_transition_time="2025-06-01T11:48:00Z",
            ),
            Condition(
                type="Training",
                status="True",
                reason="Running",
                message="step 42/100",
                last_transition_time="2025-06-01T11:55:00Z",
            ),
        ],
        validation=ValidationSummary(
            dataset="my-org/conversations",
            split="train",
            rows=1200,
            format="messages",
            verdicts=[
                MethodVerdict(method="SFT", verdict=Verdict.READY, reason="`messages` column found"),
                MethodVerdict(method="DPO", verdict=Verdict.INCOMPATIBLE, reason="missing chosen/rejected"),
            ],
            warnings=["3 rows longer than maxLength"],
        ),
        plan=PlanSummary(
            backend="HFJobs",
            target="HFJobs/a10g-large",
            flavor="a10g-large",
            gpu_count=1,
            gpu_product="NVIDIA-A10G",
            gpu_memory_gib=24,
            peft=PeftMode.LORA,
            parameters_billions=0.6,
            memory_gib=9.3,
            estimated_hours=0.5,
            estimated_cost_usd=0.75,
            suggested_timeout="2h",
            reason="LoRA fits one A10G",
        ),
        progress=Progress(
            step=42,
            total_steps=100,
            epoch=0.42,
            loss=1.2345678,
            learning_rate=2e-5,
            tokens_per_second=1534.2,
            eta_seconds=312,
            percent="42%",
            trackio_url="http://hub/spaces/me/trackio",
            updated_time="2025-06-01T11:59:50Z",
        ),
        backend_ref=BackendRef(kind="HFJob", id="68abc", namespace="my-org"),
        outputs=Outputs(model="http://hub/my-org/bot", gguf=["http://hub/my-org/bot/q4.gguf"]),
    )


def resource(status: FineTuneJobStatus | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "finetune.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "bot", "namespace": "team-a", "creationTimestamp": "2025-06-01T11:47:00Z"},
        "spec": {
            "model": {"name": "Qwen/Qwen3-0.6B"},
            "dataset": {"name": "my-org/conversations"},
            "method": "SFT",
            "backend": "Auto",
            "output": {"repo": "my-org/bot"},
        },
    }
    if status is not None:
        obj["status"] = status.wire()
    return obj


def test_render_status_shows_everything_a_user_needs() -> None:
    text = render_status(resource(running_status()), now=NOW)
    lines = text.splitlines()
    assert "Name:" in lines[0] and lines[0].endswith("bot")
    assert any(line.startswith("Phase:") and line.endswith("Running") for line in lines)
    assert any(line.startswith("Model:") and "Qwen/Qwen3-0.6B" in line for line in lines)
    assert any(line.startswith("Age:") and line.endswith("13m00s") for line in lines)
    # Conditions as a table, aligned, with ages.
    header = next(line for line in lines if "TYPE" in line and "REASON" in line)
    row = next(line for line in lines if line.strip().startswith("Training"))
    assert row.index("True") == header.index("STATUS")
    assert "5m00s" in row and "step 42/100" in row
    # Verdicts, plan, progress, backend work, outputs.
    assert any("DPO" in line and "Incompatible" in line and "chosen/rejected" in line for line in lines)
    assert "warning: 3 rows longer than maxLength" in text
    assert "HFJobs/a10g-large" in text and "1x NVIDIA-A10G (24 GiB)" in text and "$0.75" in text
    assert any(line.strip().startswith("Step:") and line.endswith("42/100 (42%)") for line in lines)
    assert any(line.strip().startswith("Loss:") and line.endswith("1.235") for line in lines)
    assert any(line.strip().startswith("ETA:") and line.endswith("5m12s") for line in lines)
    assert "HFJob my-org/68abc" in text
    assert "http://hub/my-org/bot/q4.gguf" in text


def test_render_status_of_a_new_job() -> None:
    text = render_status(resource(None), now=NOW)
    assert "Pending" in text
    for section in ("Conditions:", "Plan:", "Progress:", "Outputs:"):
        assert section not in text


def test_render_output_json_and_yaml_round_trip() -> None:
    obj = resource(running_status())
    assert json.loads(render_output(obj, "json")) == obj
    assert yaml.safe_load(render_output(obj, "yaml")) == obj
    with pytest.raises(ValueError, match="unknown output format"):
        render_output(obj, "xml")


def test_format_duration() -> None:
    assert [format_duration(s) for s in (None, 0, 42, 312, 3720, 90000)] == [
        "-",
        "0s",
        "42s",
        "5m12s",
        "1h02m",
        "1d01h",
    ]


def test_spoken_duration_is_words() -> None:
    seconds = (0, 1, 30, 59.6, 60, 312, 2700, 3590, 3600, 3900, 7260, 86399, 90000, 180000)
    assert [spoken_duration(s) for s in seconds] == [
        "0 seconds",
        "1 second",
        "30 seconds",
        "1 minute",
        "1 minute",
        "5 minutes",
        "45 minutes",
        "1 hour",
        "1 hour",
        "1 hour 5 minutes",
        "2 hours 1 minute",
        "1 day",
        "1 day 1 hour",
        "2 days 2 hours",
    ]


def test_watch_line_with_and_without_bar() -> None:
    status = running_status()
    plain = watch_line(status)
    assert plain.split() == [
        "Running",
        "step",
        "42/100",
        "(42%)",
        "loss",
        "1.235",
        "1,534",
        "tok/s",
        "ETA",
        "5m12s",
    ]
    assert "[##########" in watch_line(status, bar_width=24)  # 42% of 24 cells: 10
    queued = FineTuneJobStatus(phase=Phase.QUEUED, message="waiting for GPUs")
    assert watch_line(queued).split() == ["Queued", "waiting", "for", "GPUs"]


def statuses(*phases: Phase, message: str = "") -> Iterator[FineTuneJobStatus]:
    for i, phase in enumerate(phases):
        progress = Progress(step=i * 10, total_steps=100, percent=f"{i * 10}%") if i else None
        yield FineTuneJobStatus(phase=phase, progress=progress, message=message or None)


def test_watch_plain_lines_exit_codes() -> None:
    seq = statuses(Phase.QUEUED, Phase.QUEUED, Phase.RUNNING, Phase.SUCCEEDED)
    out = io.StringIO()
    code = watch(lambda: next(seq), out, tty=False, interval=0, sleep=lambda _: None)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["Queued", "Queued", "Running", "Succeeded"]
    assert lines[-1].startswith("Job succeeded")
    assert "\r" not in out.getvalue()

    failed = statuses(Phase.RUNNING, Phase.FAILED, message="CUDA out of memory")
    out = io.StringIO()
    assert watch(lambda: next(failed), out, tty=False, interval=0, sleep=lambda _: None) == 1
    assert out.getvalue().splitlines()[-1].startswith("Job failed: CUDA out of memory")
    cancelled = statuses(Phase.CANCELLED)
    assert watch(lambda: next(cancelled), io.StringIO(), tty=False, sleep=lambda _: None) == 1


def test_watch_unchanged_lines_printed_once_and_tty_redraws() -> None:
    same = iter([FineTuneJobStatus(phase=Phase.QUEUED)] * 3 + [FineTuneJobStatus(phase=Phase.SUCCEEDED)])
    out = io.StringIO()
    watch(lambda: next(same), out, tty=False, sleep=lambda _: None)
    assert out.getvalue().splitlines() == ["Queued", "Succeeded", "Job succeeded"]
    seq = statuses(Phase.RUNNING, Phase.RUNNING, Phase.SUCCEEDED)
    out = io.StringIO()
    watch(lambda: next(seq), out, tty=True, sleep=lambda _: None)
    assert out.getvalue().count("\r\x1b[2K") == 3 and "[##" in out.getvalue()


def test_watch_timeout() -> None:
    clock = iter(range(100))
    out = io.StringIO()
    code = watch(
        lambda: FineTuneJobStatus(phase=Phase.RUNNING),
        out,
        tty=False,
        interval=1,
        timeout=3,
        sleep=lambda _: None,
        clock=lambda: float(next(clock)),
    )
    assert code == 2 and "still Running" in out.getvalue()


def test_lines_of_joins_split_chunks() -> None:
    chunks = [b'{"ftjob":"pro', b'gress","step":1}\nplain ', b"line\r\n", b"tail"]
    assert list(lines_of(chunks)) == ['{"ftjob":"progress","step":1}', "plain line", "tail"]
    assert list(lines_of([b"caf\xc3", b"\xa9\n"])) == ["caf\u00e9"], "a chunk may split a character"


def test_file_logs_reads_and_follows_until_finished(tmp_path: Path) -> None:
    """`ftjob logs` of a Local run reads the file its `file://` URL names (the CLI need not know the
    operator's workdir), with the backend's own `logs()`; with follow, until the run has ended."""
    backend = LocalBackend(
        OperatorConfig(enabled_backends=[], metrics_port=0, local_workdir=tmp_path / "other")
    )
    folder = tmp_path / "ns" / "x"
    folder.mkdir(parents=True)
    log = folder / "train.log"
    log.write_text("one\ntwo\n")
    ref = BackendRef(kind="Process", id="x", url=log.as_uri())
    obj = resource(FineTuneJobStatus(phase=Phase.RUNNING, backend_ref=ref))
    kinds: list[str] = []

    def backend_for(kind: str) -> LocalBackend:
        kinds.append(kind)
        return backend

    assert list(read_logs(obj, backend_for, follow=False)) == ["one", "two"]
    assert kinds == ["Process"], "the backend is chosen by the kind of its work"
    following = read_logs(obj, backend_for, follow=True)
    assert [next(following), next(following)] == ["one", "two"]

    def the_run_writes_one_more_line_and_ends() -> None:
        with log.open("a") as fh:
            fh.write("three\n")
        (folder / "exit_code").write_text("0")

    threading.Timer(0.2, the_run_writes_one_more_line_and_ends).start()
    assert list(following) == ["three"]
    gone = resource(
        FineTuneJobStatus(
            phase=Phase.RUNNING,
            backend_ref=BackendRef(kind="Process", id="x", url=(tmp_path / "no").as_uri()),
        )
    )
    with pytest.raises(CliError, match=r"no log lines .*file://"):
        list(read_logs(gone, backend_for, follow=False))


def test_logs_need_a_known_kind_work_and_a_token_where_the_backend_does() -> None:
    hf_job = resource(
        FineTuneJobStatus(phase=Phase.RUNNING, backend_ref=BackendRef(kind="HFJob", id="68abc"))
    )
    with pytest.raises(CliError, match="unknown backend kind `HFJob`"):
        list(read_logs(hf_job, lambda kind: None, follow=False))
    with pytest.raises(CliError, match="no backend work yet"):
        list(read_logs(resource(FineTuneJobStatus()), lambda kind: None, follow=False))
    remote = HFJobsBackend(OperatorConfig(enabled_backends=[], metrics_port=0))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HF_TOKEN", raising=False)
        with pytest.raises(CliError, match="set `HF_TOKEN`"):
            list(read_logs(hf_job, lambda kind: remote, follow=False))


def test_every_registered_backend_writes_its_own_kind_of_work() -> None:
    kinds = [entry.kind for entry in REGISTRY.values()]
    assert len(set(kinds)) == len(kinds), "`ftjob logs` picks the backend by the kind of its work"
    cfg = OperatorConfig(enabled_backends=["Local", "HFJobs"], metrics_port=0)
    built = build_backends(cfg, None)  # type: ignore[arg-type]  # neither talks to the cluster
    assert {name: b.kind for name, b in built.items()} == {"Local": "Process", "HFJobs": "HFJob"}
    assert for_kind("Process", cfg, None).kind == "Process"  # type: ignore[arg-type,union-attr]
    assert for_kind("Nope", cfg, None) is None  # type: ignore[arg-type]


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: with-ns
  context: {cluster: c, user: u, namespace: team-a}
- name: without-ns
  context: {cluster: c, user: u}
current-context: with-ns
"""


def test_connect_namespace_from_context_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    assert connect(str(path)).namespace == "team-a"
    assert connect(str(path), context="without-ns").namespace == "default"
    assert connect(str(path), namespace="other").namespace == "other"
    with pytest.raises(CliError, match="context `nope`"):
        connect(str(path), context="nope")


def test_no_configuration_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(CliError, match="--kubeconfig"):
        connect()


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "bot", "--kubeconfig", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    assert main(["watch", "bot", "--kubeconfig", str(path), "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the Kubernetes API") and "Traceback" not in err


def test_summary_line_is_what_an_agent_relays() -> None:
    status = running_status()
    assert status.progress is not None
    status.progress.first_loss = 2.41
    status.progress.elapsed_seconds = 2700
    line = summary_line(status, "bot", "SFT")
    assert line == (
        "Job bot is running (45 minutes elapsed) · step 42/100 · training loss 1.23 (down from 2.41 at start)"
        " · learning rate 2e-05 · ~5 minutes left · estimated cost $0.75"
    )
    assert render_output(resource(status), "summary") == (
        "Job bot is running (45 minutes elapsed) · step 42/100 · training loss 1.23 (down from 2.41 at start)"
        " · learning rate 2e-05 · ~5 minutes left · estimated cost $0.75\n"
    )

    grpo = FineTuneJobStatus(
        phase=Phase.SUCCEEDED,
        progress=Progress(
            step=50, total_steps=50, loss=0.0001, reward=0.62, first_reward=0.1,
            rewards={"format": 0.9, "accuracy": 0.34}, elapsed_seconds=600,
        ),
    )  # fmt: skip
    line = summary_line(grpo, "math", "GRPO")
    assert line.startswith(
        "Job math succeeded (10 minutes elapsed) · step 50/50 · mean reward 0.62 (up from 0.1"
    )
    assert "format 0.9, accuracy 0.34" in line and "loss" not in line and "left" not in line

    dpo = FineTuneJobStatus(
        phase=Phase.RUNNING,
        progress=Progress(
            step=3, total_steps=9, loss=0.61, first_loss=0.6931, reward_accuracy=0.75, reward_margin=0.2
        ),
    )
    assert "training loss 0.61 (down from 0.693 at start) · reward accuracy 75%, margin 0.2" in summary_line(
        dpo
    )

    blocked = FineTuneJobStatus(phase=Phase.BLOCKED, message="Secret `hf-token` not found")
    assert summary_line(blocked, "bot") == "Job bot is blocked: Secret `hf-token` not found"


def test_status_explains_rows_and_a_cpu_plan() -> None:
    status = FineTuneJobStatus(
        phase=Phase.RUNNING,
        plan=PlanSummary(
            backend="Local", target="Local/cpu", peft=PeftMode.NONE, memory_gib=1.3, ram_gib=16,
            estimated_hours=0.01, estimated_cost_usd=0.0, suggested_timeout="1h", reason="tiny",
        ),
        progress=Progress(
            step=20, total_steps=40, epoch=1.82,
            rows=DataRows(dataset_rows=300, examples=176, packed=True, examples_per_step=16, max_length=1024),
        ),
    )  # fmt: skip
    text = render_status(resource(status), now=NOW)
    assert "Hardware:  CPU (16 GiB RAM)" in text and "1.3 GiB of RAM" in text and "per GPU" not in text
    assert "300 rows (none held out) -> 176 packed sequences; 16 examples per step" in text
    assert "so an epoch is 11 steps" in text


def test_rows_the_trainer_dropped_are_counted_with_the_reason() -> None:
    rows = DataRows(
        dataset_rows=40,
        examples=39,
        examples_per_step=2,
        dropped_rows=1,
        dropped_reason="the prompt alone fills maxLength 128",
        max_length=128,
    )
    text = render_status(resource(FineTuneJobStatus(progress=Progress(step=1, rows=rows))), now=NOW)
    assert (
        "40 rows (none held out) -> 39 examples (1 rows dropped: the prompt alone fills maxLength 128)"
        in text
    )
