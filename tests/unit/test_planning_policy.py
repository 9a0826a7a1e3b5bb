"""The hardware policy, table-driven: sizes × methods × catalogs, explicit choices, budgets, backends."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from finetune_operator.api.spec import Backend, FineTuneJobSpec
from finetune_operator.errors import SpecError
from finetune_operator.planning import (
    HFJobsCatalog,
    PlannerConfig,
    default_catalog,
    make_plan,
    model_info_from_parameters,
    offers_from_objects,
)
from finetune_operator.planning.estimate import format_duration, suggested_timeout_hours
from finetune_operator.planning.policy import PlanDecision
from finetune_training.plan import Method, PeftMode

SIZES = [0.5e9, 1.5e9, 3e9, 7e9, 8e9, 13e9, 70e9]


def gpu_node(name: str, gpus: int, product: str, mib: int) -> dict[str, Any]:
    labels = {"nvidia.com/gpu.product": product, "nvidia.com/gpu.memory": str(mib)}
    res = {"nvidia.com/gpu": str(gpus)}
    return {"metadata": {"name": name, "labels": labels}, "status": {"capacity": res, "allocatable": res}}


def gpu_pod(node: str, gpus: int, phase: str = "Running") -> dict[str, Any]:
    res = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return {
        "spec": {"nodeName": node, "containers": [{"name": "c", "resources": res}]},
        "status": {"phase": phase},
    }


H100_NODES = [
    gpu_node("h100-a", 8, "NVIDIA-H100-80GB-HBM3", 81559),
    gpu_node("h100-b", 8, "NVIDIA-H100-80GB-HBM3", 81559),
]
A10G_NODE = gpu_node("a10g", 1, "NVIDIA-A10G", 23028)


def spec(**fields: Any) -> FineTuneJobSpec:
    body = {"model": {"name": "org/model"}, "dataset": {"name": "org/data"}, "method": "SFT"} | fields
    return FineTuneJobSpec.model_validate(body)


def plan(
    s: FineTuneJobSpec,
    size: float = 7e9,
    *,
    rows: int | None = 10_000,
    mean: float | None = 400,
    catalog: HFJobsCatalog | None = None,
    nodes: list[dict[str, Any]] | None = None,
    pods: list[dict[str, Any]] | None = None,
    **config: Any,
) -> PlanDecision:
    return make_plan(
        s,
        model=model_info_from_parameters(size),
        dataset_rows=rows,
        mean_tokens=mean,
        catalog=catalog or default_catalog(),
        cluster_offers=offers_from_objects(nodes or [], pods or []),
        config=PlannerConfig(**config),
    )


def only(*names: str) -> HFJobsCatalog:
    full = default_catalog()
    return HFJobsCatalog(flavors=[f for f in full.flavors if f.name in names])


@pytest.mark.parametrize(("size", "method"), itertools.product(SIZES, ["SFT", "DPO", "GRPO"]))
def test_every_size_and_method_gets_a_consistent_plan(size: float, method: str) -> None:
    d = plan(spec(method=method), size)
    catalog = default_catalog()
    flavor = catalog.get(d.flavor or "")
    assert d.backend == Backend.HF_JOBS and flavor is not None
    assert d.peft != PeftMode.AUTO
    # Fits with the headroom kept.
    assert d.memory.total_gib <= flavor.gpu_memory_gib * 0.88 + 1e-6
    assert d.estimated_cost_usd == pytest.approx(d.estimated_hours * flavor.usd_per_hour, abs=0.01)
    assert d.timeout_seconds >= max(1800, d.estimated_hours * 3600)
    assert d.summary.hyperparameters == d.hyperparameters
    assert d.summary.target == f"HFJobs/{d.flavor}"
    if d.peft == PeftMode.NONE:  # peft Auto: full fine-tuning only on one GPU
        assert flavor.gpu_count == 1
    if method == "GRPO":
        hp = d.hyperparameters
        assert hp.num_generations == 8 and hp.max_completion_length == 256
        assert (hp.per_device_batch_size * hp.gradient_accumulation_steps) % 8 == 0


@pytest.mark.parametrize(
    ("size", "method", "peft"),
    [
        (0.5e9, "SFT", PeftMode.NONE),
        (1.5e9, "SFT", PeftMode.NONE),
        (7e9, "SFT", PeftMode.NONE),  # 116 GiB: one H200
        (8e9, "SFT", PeftMode.LORA),  # full needs more than an H200
        (13e9, "SFT", PeftMode.LORA),
        (7e9, "DPO", PeftMode.LORA),  # full DPO adds a reference copy
        (70e9, "SFT", PeftMode.LORA),
    ],
)
def test_auto_peft(size: float, method: str, peft: PeftMode) -> None:
    assert plan(spec(method=method), size).peft == peft


@pytest.mark.parametrize(
    ("flavors", "size", "peft", "flavor"),
    [
        (("a10g-large", "a10g-largex2"), 7e9, PeftMode.LORA, "a10g-large"),
        (("t4-small",), 7e9, PeftMode.QLORA, "t4-small"),
        (("t4-small",), 0.5e9, PeftMode.NONE, "t4-small"),
        (("l4x1", "a100-large"), 3e9, PeftMode.NONE, "a100-large"),
        (("l4x1", "l4x4"), 13e9, PeftMode.LORA, "l4x4"),  # LoRA sharded over 4 L4s comes before QLoRA
        (("l4x1",), 13e9, PeftMode.QLORA, "l4x1"),
    ],
)
def test_catalogs(flavors: tuple[str, ...], size: float, peft: PeftMode, flavor: str) -> None:
    d = plan(spec(), size, catalog=only(*flavors))
    assert (d.peft, d.flavor) == (peft, flavor)


def test_nothing_fits_names_the_need() -> None:
    # QLoRA is replicated (DDP), so 70B's 4-bit weights (~36 GiB) must fit one L4.
    with pytest.raises(SpecError, match=r"needs .* GiB per GPU") as err:
        plan(spec(), 70e9, catalog=only("l4x1", "l4x4"))
    assert err.value.reason == "NoHardwareFits"


def test_checkpointing_only_when_needed() -> None:
    small = plan(spec(), 0.5e9, catalog=only("a100-large"))
    assert small.hyperparameters.gradient_checkpointing is False
    tight = plan(spec(), 7e9, catalog=only("h200"))
    assert tight.hyperparameters.gradient_checkpointing is True
    assert "gradient checkpointing on" in tight.reason


def test_micro_batch_halves_keeping_the_effective_batch() -> None:
    d = plan(spec(peft="QLoRA"), 7e9, catalog=only("t4-small"))
    hp = d.hyperparameters
    assert hp.per_device_batch_size < 4
    assert hp.per_device_batch_size * hp.gradient_accumulation_steps == 16


def test_free_cluster_gpus_are_preferred() -> None:
    d = plan(spec(method="DPO"), 3e9, nodes=H100_NODES)
    assert d.backend == Backend.KUBERNETES and d.gpu_product == "NVIDIA-H100-80GB-HBM3"
    assert d.estimated_cost_usd == 0 and d.summary.target.startswith("Kubernetes/1x")


def test_busy_cluster_falls_back_to_hf_jobs() -> None:
    pods = [gpu_pod("h100-a", 8), gpu_pod("h100-b", 8)]
    d = plan(spec(method="DPO"), 3e9, nodes=H100_NODES, pods=pods)
    assert d.backend == Backend.HF_JOBS


def test_prefer_cluster_off_compares_prices() -> None:
    prices = [{"product": "H100", "usdPerGPUHour": 100.0}]
    d = plan(spec(method="DPO"), 3e9, nodes=H100_NODES, cluster_gpu_prices=prices, prefer_cluster=False)
    assert d.backend == Backend.HF_JOBS
    assert plan(spec(method="DPO"), 3e9, nodes=H100_NODES, prefer_cluster=False).backend == Backend.KUBERNETES


def test_multi_gpu_only_when_one_cannot_hold_it() -> None:
    d = plan(spec(peft="None", backend="Kubernetes"), 13e9, nodes=H100_NODES)
    assert d.gpu_count > 1 and d.sharding.value == "FSDP"
    assert d.hyperparameters.extra_args["fsdp"] == "full_shard auto_wrap"
    one = plan(spec(peft="LoRA", backend="Kubernetes"), 7e9, nodes=H100_NODES)
    assert one.gpu_count == 1 and one.sharding.value == "None"


def test_busy_gpus_with_explicit_kubernetes_queue() -> None:
    pods = [gpu_pod("h100-a", 8), gpu_pod("h100-b", 8)]
    d = plan(spec(backend="Kubernetes"), 3e9, nodes=H100_NODES, pods=pods)
    assert d.backend == Backend.KUBERNETES and "queue" in d.reason


@pytest.mark.parametrize(
    ("fields", "size", "reason", "needle"),
    [
        (
            {"peft": "None", "backend": "HFJobs", "hardware": {"flavor": "a10g-large"}},
            7e9,
            "NoHardwareFits",
            "set `peft: LoRA`",
        ),
        ({"peft": "None"}, 70e9, "NoHardwareFits", "set `peft: LoRA`"),
        (
            {"hardware": {"flavor": "a10g-large"}, "backend": "Kubernetes"},
            1e9,
            "HardwareInvalid",
            "backend: HFJobs",
        ),
        ({"backend": "HFJobs", "hardware": {"flavor": "h100x9"}}, 1e9, "HardwareInvalid", "a10g-large"),
        ({"hardware": {"gpuCount": 1}, "backend": "HFJobs"}, 1e9, "HardwareInvalid", "hardware.flavor"),
        (
            {"hardware": {"gpuProduct": "Tesla-T4"}, "backend": "Kubernetes"},
            1e9,
            "NoHardwareFits",
            "NVIDIA-A10G",
        ),
        (
            {"hardware": {"gpuProduct": "NVIDIA-A10G", "gpuCount": 2}},
            1e9,
            "NoHardwareFits",
            "up to 1 per node",
        ),
        (
            {
                "peft": "QLoRA",
                "backend": "HFJobs",
                "hardware": {"flavor": "t4-small"},
                "hyperparameters": {"maxLength": 16384},
            },
            7e9,
            "NoHardwareFits",
            "reduce `hyperparameters.maxLength` to",
        ),
        (
            {
                "peft": "LoRA",
                "backend": "HFJobs",
                "hardware": {"flavor": "a10g-large"},
                "hyperparameters": {"gradientCheckpointing": False},
            },
            7e9,
            "NoHardwareFits",
            "gradientCheckpointing: true",
        ),
        ({"backend": "Local"}, 7e9, "NoHardwareFits", "use `backend: HFJobs`"),
        (
            {"method": "GRPO", "hyperparameters": {"perDeviceBatchSize": 3}},
            1e9,
            "HyperparametersInvalid",
            "multiple",
        ),
        ({"hyperparameters": {"numGenerations": 4}}, 1e9, "HyperparametersInvalid", "GRPO"),
        ({"method": "DPO", "hyperparameters": {"packing": True}}, 1e9, "HyperparametersInvalid", "SFT"),
        (
            {"method": "GRPO", "evaluation": {"maxLoss": 1.0}},
            1e9,
            "EvaluationInvalid",
            "`evaluation.maxLoss` and `evaluation.minImprovement` compare losses",
        ),
    ],
)
def test_refusals_name_the_problem_and_the_fix(fields: dict, size: float, reason: str, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        plan(spec(**fields), size, nodes=[*H100_NODES, A10G_NODE])
    assert err.value.reason == reason
    assert needle in err.value.message


def test_explicit_choices_that_fit_are_kept() -> None:
    d = plan(spec(peft="LoRA", backend="HFJobs", hardware={"flavor": "a100x4"}), 7e9)
    assert (d.flavor, d.peft, d.gpu_count) == ("a100x4", PeftMode.LORA, 4)
    k = plan(spec(hardware={"gpuProduct": "H100", "gpuCount": 2}), 7e9, nodes=H100_NODES)
    assert (k.backend, k.gpu_count, k.peft) == (Backend.KUBERNETES, 2, PeftMode.NONE)


def test_budget_refuses_with_the_estimate_and_options() -> None:
    with pytest.raises(SpecError) as err:
        plan(spec(budget={"maxCostUSD": 0.05}), 7e9)
    assert err.value.reason == "BudgetExceeded"
    assert "$0.05" in err.value.message and "peft LoRA" in err.value.message


def test_budget_turns_auto_peft_lighter() -> None:
    free = plan(spec(), 7e9)
    assert free.peft == PeftMode.NONE
    cheap = plan(spec(budget={"maxCostUSD": free.estimated_cost_usd * 0.8}), 7e9)
    assert cheap.peft in (PeftMode.LORA, PeftMode.QLORA)
    assert cheap.estimated_cost_usd <= free.estimated_cost_usd * 0.8
    assert "budget" in cheap.reason


def test_unknown_dataset_size_plans_without_estimate() -> None:
    d = plan(spec(budget={"maxCostUSD": 0.01}), 7e9, rows=None, mean=None)
    assert d.summary.tokens is None and "unknown" in d.reason


def test_timeout_shorter_than_estimate_is_refused() -> None:
    with pytest.raises(SpecError) as err:
        plan(spec(budget={"timeout": "1m"}), 7e9)
    assert err.value.reason == "TimeoutTooShort"


def test_local_cpu_and_local_gpu() -> None:
    cpu = plan(spec(backend="Local"), 0.1e9)
    assert (cpu.summary.target, cpu.estimated_cost_usd, cpu.gpu_count) == ("Local/cpu", 0.0, 0)
    assert cpu.hyperparameters.bf16 is False
    # A CPU plan speaks of RAM, never of GPUs.
    assert (cpu.summary.gpu_memory_gib, cpu.memory.gpu_count) == (None, 0)
    assert cpu.summary.ram_gib and "GiB of RAM" in cpu.reason and "GPU" not in cpu.reason
    gpu = plan(spec(backend="Local"), 7e9, local_gpus=1, local_gpu_product="NVIDIA-A10G")
    assert gpu.summary.target == "Local/1xNVIDIA-A10G" and gpu.peft == PeftMode.LORA
    assert gpu.summary.gpu_memory_gib and gpu.memory.gpu_count == 1 and "GiB per GPU" in gpu.reason


@pytest.mark.parametrize(
    ("method", "peft", "lr", "beta"),
    [
        ("SFT", "None", 2e-5, None),
        ("SFT", "LoRA", 2e-4, None),
        ("DPO", "None", 5e-7, 0.1),
        ("DPO", "LoRA", 5e-6, 0.1),
        ("GRPO", "LoRA", 1e-5, 0.0),
    ],
)
def test_method_defaults(method: str, peft: str, lr: float, beta: float | None) -> None:
    d = plan(spec(method=method, peft=peft), 0.5e9)
    assert d.hyperparameters.learning_rate == lr and d.hyperparameters.beta == beta
    assert d.hyperparameters.packing is (method == "SFT")


def test_user_settings_win() -> None:
    hp = {
        "learningRate": 1e-4,
        "maxLength": 512,
        "perDeviceBatchSize": 2,
        "epochs": 3,
        "extraArgs": {"optim": "adamw_8bit"},
    }
    d = plan(spec(peft="LoRA", hyperparameters=hp), 1.5e9)
    got = d.hyperparameters
    assert (got.learning_rate, got.max_length, got.per_device_batch_size, got.epochs) == (1e-4, 512, 2, 3)
    assert got.extra_args == {"optim": "adamw_8bit"}
    assert d.summary.tokens == 10_000 * 400 * 3


def test_grpo_is_dominated_by_generation() -> None:
    d = plan(spec(method="GRPO", peft="LoRA"), 7e9)
    assert "generation takes" in d.reason
    sft = plan(spec(peft="LoRA"), 7e9)
    assert d.estimated_hours > 5 * sft.estimated_hours


@pytest.mark.parametrize(("hours", "text"), [(0.25, "15m"), (1.0, "1h"), (2.5, "2h30m"), (0.001, "1m")])
def test_format_duration(hours: float, text: str) -> None:
    assert format_duration(hours) == text


@pytest.mark.parametrize(("hours", "margin", "timeout"), [(0.1, 1.5, 0.5), (1.0, 1.5, 1.5), (1.7, 1.5, 3.0)])
def test_suggested_timeout(hours: float, margin: float, timeout: float) -> None:
    assert suggested_timeout_hours(hours, margin) == timeout


def test_methods_enum_cover() -> None:
    assert {m.value for m in Method} == {"SFT", "DPO", "GRPO", "KTO"}


def test_full_fine_tuning_of_a_70b_model_spans_nodes_when_one_cannot_hold_it() -> None:
    four = [gpu_node(f"h100-{i}", 8, "NVIDIA-H100-80GB-HBM3", 81559) for i in range(4)]
    d = plan(spec(peft="None", backend="Kubernetes"), 70e9, nodes=four)
    assert d.nodes > 1 and d.gpu_count == 8, "whole 8-GPU nodes"
    assert d.summary.nodes == d.nodes and d.summary.target == f"Kubernetes/{d.nodes}x8xNVIDIA-H100-80GB-HBM3"
    assert d.sharding.value == "FSDP" and f"{8 * d.nodes} GPUs on {d.nodes} nodes" in d.reason
    with pytest.raises(SpecError) as err:
        plan(spec(peft="None", backend="Kubernetes"), 70e9, nodes=four, max_nodes=1)
    assert err.value.reason == "NoHardwareFits", "one node is the most when max_nodes is 1"


def test_what_fits_on_one_node_stays_on_one_node() -> None:
    d = plan(spec(peft="None", backend="Kubernetes"), 13e9, nodes=H100_NODES)
    assert d.nodes == 1 and d.summary.nodes == 1


def test_nodes_can_be_asked_for() -> None:
    hardware = {"nodes": 2, "gpuCount": 4, "gpuProduct": "NVIDIA-H100-80GB-HBM3"}
    d = plan(spec(backend="Kubernetes", hardware=hardware), 7e9, nodes=H100_NODES)
    assert (d.nodes, d.gpu_count) == (2, 4)
    with pytest.raises(SpecError) as err:
        plan(spec(backend="Kubernetes", hardware={"nodes": 3}), 7e9, nodes=H100_NODES)
    assert err.value.reason == "NoHardwareFits" and "3 nodes" in err.value.message
    with pytest.raises(SpecError) as err:
        plan(spec(backend="HFJobs", hardware={"nodes": 2}), 7e9, nodes=H100_NODES)
    assert err.value.reason == "HardwareInvalid" and "backend: Kubernetes" in err.value.message
