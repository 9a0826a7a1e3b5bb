"""One configuration: the planner's settings are `OperatorConfig.planner`, read from the config file, from
`FTJOB_PLANNER__*` (and the older top-level names), and used alike by the operator and `ftjob plan`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from finetune_operator.cli.main import main
from finetune_operator.cli.plan import operator_config
from finetune_operator.config import OperatorConfig
from finetune_operator.planner_service import PlannerService, planner_config
from finetune_operator.planning.config import PlannerConfig

JOB = """\
apiVersion: finetune.dev/v1alpha1
kind: FineTuneJob
metadata: {name: local-run}
spec:
  model: {name: Qwen/Qwen2.5-7B}
  dataset: {name: my-org/conversations}
  method: SFT
  backend: Local
"""
PLAN = ["--offline-model-params", "7e9", "--rows", "1000", "--mean-tokens", "100", "--no-live-catalog"]


def _file(tmp_path: Path, data: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_planner_settings_come_from_the_file_and_variables_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, {"planner": {"headroom": 0.3, "max_gpus": 4, "localGpus": 1}})
    monkeypatch.setenv("FTJOB_PLANNER__HEADROOM", "0.2")
    cfg = OperatorConfig.load(path)
    assert (cfg.planner.headroom, cfg.planner.max_gpus, cfg.planner.local_gpus) == (0.2, 4, 1)


def test_the_older_top_level_names_still_reach_the_planner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTJOB_LOCAL_USD_PER_HOUR", "36")
    cfg = OperatorConfig.load(_file(tmp_path, {"prefer_cluster": False, "local_gpus": 2}))
    assert (cfg.planner.prefer_cluster, cfg.planner.local_gpus, cfg.planner.local_usd_per_hour) == (
        False,
        2,
        36,
    )
    # A value under `planner` wins over the older top-level key.
    both = OperatorConfig(local_gpus=2, planner={"local_gpus": 3})  # type: ignore[call-arg]
    assert both.planner.local_gpus == 3


def test_prices_have_one_key_and_hf_jobs_needs_its_backend() -> None:
    with pytest.raises(ValidationError, match="gpu_prices"):
        OperatorConfig(planner={"cluster_gpu_prices": []})  # type: ignore[arg-type]
    cfg = OperatorConfig(
        gpu_prices=[{"product": "NVIDIA-L4", "usdPerGPUHour": 0.4}],  # type: ignore[list-item]
        enabled_backends=["Kubernetes"],  # type: ignore[list-item]
        metrics_port=0,
    )
    planner = planner_config(cfg)
    assert [p.product for p in planner.cluster_gpu_prices] == ["NVIDIA-L4"]
    assert planner.hf_jobs_enabled is False
    assert planner_config(OperatorConfig(metrics_port=0)) == PlannerConfig()


@pytest.mark.parametrize(
    "form",
    [
        lambda s: {"planner": s},  # the operator's config.yaml
        lambda s: {"config": {"planner": s, "enabled_backends": ["Local"]}},  # a Helm values file
        lambda s: s,  # bare planner settings (the older --planner-config file)
    ],
    ids=["config.yaml", "helm-values", "bare-planner"],
)
def test_ftjob_plan_reads_the_operators_configuration(tmp_path: Path, form: object) -> None:
    settings = {"local_usd_per_hour": 2.0, "local_memory_gib": 512, "local_cpu_tflops": 1.0}
    cfg = operator_config(str(_file(tmp_path, form(settings))))  # type: ignore[operator]
    assert cfg.planner == PlannerConfig(**settings)


def test_ftjob_plan_plans_with_the_same_settings_as_the_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(JOB)
    values = _file(tmp_path, {"config": {"planner": {"local_usd_per_hour": 2.0, "local_memory_gib": 512}}})
    assert main(["plan", "-f", str(job), "-o", "json", "--config", str(values), *PLAN]) == 0
    out = capsys.readouterr().out
    assert '"hourlyPriceUSD": 2.0' in out and '"target": "Local/cpu"' in out
    # Without the file, the defaults: 16 GiB of host memory cannot hold it.
    assert main(["plan", "-f", str(job), "-o", "json", *PLAN]) == 1
    assert "NoHardwareFits" in capsys.readouterr().err


def test_the_service_plans_with_the_configured_planner() -> None:
    from finetune_operator.api.spec import FineTuneJobSpec
    from finetune_operator.planning import model_info_from_parameters

    spec = FineTuneJobSpec.model_validate(
        {"model": {"name": "org/m"}, "dataset": {"name": "org/d"}, "method": "SFT", "backend": "Local"}
    )
    cfg = OperatorConfig(planner={"local_usd_per_hour": 3.0}, metrics_port=0)  # type: ignore[arg-type]
    service = PlannerService(cfg, None, live_catalog=False)
    decision = service.plan(spec, token=None, rows=10, mean_tokens=10, model=model_info_from_parameters(1e8))
    assert decision.summary.hourly_price_usd == 3.0
    assert service.catalog(None).source == service.catalog(None).source
