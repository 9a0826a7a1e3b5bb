"""What a FineTuneJob author's code cannot reach: the operator's environment, its event channel, etcd."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from finetune_operator.api.spec import FineTuneJobSpec
from finetune_operator.backends.base import JobTarget
from finetune_operator.backends.local import LocalBackend
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import SpecError
from finetune_operator.lifecycle.signing import events_key
from finetune_operator.planning.model_info import load_model_info
from finetune_operator.validation.inspect import read_source
from finetune_operator.validation.local_paths import check_local_paths
from finetune_training.events import EventKind, RuntimeEvent, emit, format_line, parse_line
from finetune_training.plan import DatasetSource, TrainingPlan

KEY = "k" * 64
PUBLISHED = RuntimeEvent(ftjob=EventKind.PUBLISHED, artifact="model", url="https://hub/tester/m")


# -- signed events -------------------------------------------------------------------------------------
def test_a_signed_line_reads_back_with_its_key_only() -> None:
    line = format_line(PUBLISHED, KEY)
    assert parse_line("[pod/x] " + line, KEY) == PUBLISHED
    assert parse_line(line, "other") is None
    assert parse_line(format_line(PUBLISHED), KEY) is None, "unsigned"
    tampered = line.replace("tester/m", "evil/m")
    assert parse_line(tampered, KEY) is None


def test_the_runtime_signs_with_the_key_in_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTJOB_EVENTS_KEY", KEY)
    out = io.StringIO()
    emit(PUBLISHED, out)
    assert parse_line(out.getvalue().strip(), KEY) == PUBLISHED


def test_attempt_keys_differ_per_job_and_attempt_and_survive_a_restart() -> None:
    a, b = (OperatorConfig(events_signing_key="operator-secret", metrics_port=0) for _ in range(2))
    assert events_key(a, "uid-1", 1) == events_key(b, "uid-1", 1), "a new operator process derives the same"
    keys = {events_key(a, uid, n) for uid in ("uid-1", "uid-2") for n in (1, 2)}
    assert len(keys) == 4 and "operator-secret" not in "".join(keys)


# -- the Local backend ---------------------------------------------------------------------------------
DUMP_ENV = "import json, os; print('ENV=' + json.dumps(dict(os.environ)), flush=True)"


def _plan(**extra: object) -> TrainingPlan:
    return TrainingPlan.model_validate(
        {
            "job": {"name": "j", "uid": "u-1"},
            "model": "tester/tiny",
            "dataset": {"name": "tester/data"},
            "method": "GRPO",
            "peft": "LoRA",
            "output": {"localDir": "unused"},
            "tracking": {"project": "p", "runName": "r"},
            **extra,
        }
    )


def test_a_local_run_sees_none_of_the_operators_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBECONFIG": "/root/.kube/config",
        "FTJOB_EVENTS_SIGNING_KEY": "operator-secret",
        "AWS_SECRET_ACCESS_KEY": "x",
        "HF_TOKEN": "operator-token",
    }.items():
        monkeypatch.setenv(name, value)
    backend = LocalBackend(
        OperatorConfig(local_workdir=tmp_path, metrics_port=0), [sys.executable, "-c", DUMP_ENV]
    )
    target = JobTarget(namespace="ns", name="j", uid="u-1", token="user-token", events_key=KEY)
    backend.submit(target, _plan(), timeout_seconds=60)
    log = backend.folder(target) / "train.log"
    deadline = time.monotonic() + 30
    while "ENV=" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    env = json.loads(log.read_text().split("ENV=", 1)[1].splitlines()[0])
    assert env["HF_TOKEN"] == "user-token" and env["FTJOB_EVENTS_KEY"] == KEY
    assert not {k for k in env if k.startswith(("KUBERNETES_", "AWS_"))}
    assert "KUBECONFIG" not in env and "FTJOB_EVENTS_SIGNING_KEY" not in env
    assert "operator-secret" not in json.dumps(env)


def test_local_code_rewards_are_refused_unless_the_operator_allows_them(tmp_path: Path) -> None:
    plan = _plan(rewards=[{"type": "Python", "code": "def reward(completions, **kw): return [0.0]"}])
    target = JobTarget(namespace="ns", name="j", uid="u-1")
    backend = LocalBackend(OperatorConfig(local_workdir=tmp_path, metrics_port=0), ["true"])
    with pytest.raises(SpecError) as err:
        backend.submit(target, plan, timeout_seconds=60)
    assert err.value.reason == "CodeRewardsDisabled" and "localAllowCodeRewards" in err.value.message
    allowed = LocalBackend(
        OperatorConfig(local_workdir=tmp_path, metrics_port=0, local_allow_code_rewards=True), ["true"]
    )
    assert allowed.submit(target, plan, timeout_seconds=60).id


# -- object size ---------------------------------------------------------------------------------------
def _spec(*codes: str) -> dict[str, object]:
    return {
        "model": {"name": "tester/tiny"},
        "dataset": {"name": "tester/data"},
        "method": "GRPO",
        "rewards": [{"type": "Python", "code": c} for c in codes],
    }


def test_inline_reward_code_is_bounded_per_reward_and_in_all() -> None:
    FineTuneJobSpec.model_validate(_spec("x" * 16_000, "y" * 16_000))
    with pytest.raises(ValidationError, match="16384"):
        FineTuneJobSpec.model_validate(_spec("x" * 17_000))
    with pytest.raises(ValidationError, match="in all"):
        FineTuneJobSpec.model_validate(_spec("x" * 16_000, "y" * 16_000, "z" * 1_000))


# -- local paths ---------------------------------------------------------------------------------------
def _job(dataset: str, backend: str, model: str = "tester/tiny") -> FineTuneJobSpec:
    return FineTuneJobSpec.model_validate(
        {"model": {"name": model}, "dataset": {"name": dataset}, "method": "SFT", "backend": backend}
    )


def test_local_paths_only_on_local_and_under_allowed_roots(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("{}\n")
    (tmp_path / "secret.key").write_text("x")
    config = OperatorConfig(metrics_port=0, local_path_roots=[data])
    check_local_paths(_job(str(data / "a.jsonl"), "Local"), config)
    check_local_paths(_job("tester/data", "HFJobs"), config)
    refused = [
        (_job(str(data / "a.jsonl"), "HFJobs"), "spec.dataset.name", "backend: Local"),
        (_job(str(data / "a.jsonl"), "Auto"), "spec.dataset.name", "backend: Local"),
        (_job(str(data / ".." / "secret.key"), "Local"), "spec.dataset.name", str(data)),
        (_job("tester/data", "Kubernetes", model=str(tmp_path)), "spec.model.name", "backend: Local"),
    ]
    for spec, field, hint in refused:
        with pytest.raises(SpecError) as err:
            check_local_paths(spec, config)
        assert err.value.reason == "LocalPathRefused" and f"`{field}`" in err.value.message
        assert hint in err.value.message and "secret.key" not in err.value.message


def test_whether_a_path_exists_never_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing path and a missing one look the same to a job author: same refusal, same Hub lookup."""
    (tmp_path / "secret.key").write_text("x")
    (tmp_path / "tester" / "data").mkdir(parents=True)
    (tmp_path / "tester" / "data" / "a.jsonl").write_text("{}\n")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    config = OperatorConfig(metrics_port=0, local_path_roots=[allowed])

    def outcome(spec: FineTuneJobSpec) -> str:
        try:
            check_local_paths(spec, config)
        except SpecError as err:
            return f"{err.reason}: {err.message}"
        return "allowed"

    for backend in ("Local", "HFJobs"):
        existing, missing = str(tmp_path / "secret.key"), str(tmp_path / "missing.key")
        assert outcome(_job(existing, backend)) == outcome(_job(missing, backend)) != "allowed"
        model_existing, model_missing = (
            _job("t/d", backend, model=str(tmp_path)),
            _job("t/d", backend, model="/nope"),
        )
        assert outcome(model_existing) == outcome(model_missing) != "allowed"

    # Hub-shaped names relative to the operator's working folder go to the Hub, existing or not.
    monkeypatch.chdir(tmp_path)
    asked: list[str] = []

    def sample_hub(name: str, **_: object) -> None:
        asked.append(name)
        raise SpecError("DatasetNotFound", "not on the Hub")

    def model_info_from_hub(name: str, **_: object) -> None:
        asked.append(name)
        raise SpecError("ModelNotFound", "not on the Hub")

    monkeypatch.setattr("finetune_operator.validation.hub.sample_hub", sample_hub)
    monkeypatch.setattr("finetune_operator.planning.model_info.model_info_from_hub", model_info_from_hub)
    for name in ("tester/data", "tester/missing", "tester", "missing"):
        assert outcome(_job(name, "Local", model=name)) == "allowed"
        with pytest.raises(SpecError, match="not on the Hub"):
            read_source(DatasetSource(name=name), token=None, endpoint=None, rows=10, max_row_bytes=1024)
        with pytest.raises(SpecError, match="not on the Hub"):
            load_model_info(name)
    assert asked == [n for n in ("tester/data", "tester/missing", "tester", "missing") for _ in range(2)]


def test_by_default_no_local_path_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("{}\n")
    with pytest.raises(SpecError, match="allows no local paths"):
        check_local_paths(_job(str(tmp_path / "a.jsonl"), "Local"), OperatorConfig(metrics_port=0))
