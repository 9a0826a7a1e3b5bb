"""HF Jobs flavors, GPU types and throughput figures."""

from __future__ import annotations

import pytest

from finetune_operator.planning.catalog import default_catalog, flavor_from_hardware
from finetune_operator.planning.gpus import GPU_TYPES, gpu_type_for
from finetune_operator.planning.throughput import (
    BUILTIN_MEASUREMENTS,
    TABLE_SIZES_B,
    ThroughputMeasurement,
    throughput_table,
    training_tokens_per_second,
)
from finetune_training.plan import PeftMode

# The official prices, USD per hour.
PRICES = {
    "t4-small": 0.40,
    "t4-medium": 0.60,
    "l4x1": 0.80,
    "l4x4": 3.80,
    "l40sx1": 1.80,
    "l40sx4": 8.30,
    "l40sx8": 23.50,
    "a10g-small": 1.00,
    "a10g-large": 1.50,
    "a10g-largex2": 3.00,
    "a10g-largex4": 5.00,
    "a100-large": 2.50,
    "a100x4": 10.00,
    "a100x8": 20.00,
    "h200": 5.00,
    "h200x2": 10.00,
    "h200x4": 20.00,
    "h200x8": 40.00,
    "rtx-pro-6000": 2.75,
    "rtx-pro-6000x2": 5.50,
    "rtx-pro-6000x4": 11.00,
    "rtx-pro-6000x8": 22.00,
}


def test_builtin_catalog_has_every_flavor_at_its_price() -> None:
    catalog = default_catalog()
    for name, price in PRICES.items():
        flavor = catalog.get(name)
        assert flavor is not None and flavor.usd_per_hour == price
        assert flavor.gpu_count >= 1 and flavor.gpu_memory_gib > 10
    for cpu in ("cpu-basic", "cpu-upgrade"):
        flavor = catalog.get(cpu)
        assert flavor is not None and flavor.gpu_count == 0 and flavor.gpu is None


@pytest.mark.parametrize(
    ("name", "gpu", "count", "memory"),
    [
        ("a100-large", "A100", 1, 80.0),
        ("h200x4", "H200", 4, 140.4),
        ("l40sx8", "L40S", 8, 44.99),
        ("t4-small", "T4", 1, 15.0),
    ],
)
def test_flavor_hardware(name: str, gpu: str, count: int, memory: float) -> None:
    flavor = default_catalog().get(name)
    assert flavor is not None
    assert (flavor.gpu, flavor.gpu_count, flavor.gpu_memory_gib) == (
        gpu,
        count,
        pytest.approx(memory, abs=0.01),
    )


def test_hardware_endpoint_entry_converts_per_minute_prices() -> None:
    entry = {
        "name": "a10g-largex2",
        "prettyName": "2x Nvidia A10G - large",
        "cpu": "24 vCPU",
        "ram": "92 GB",
        "accelerator": {
            "type": "gpu",
            "model": "A10G",
            "quantity": "2",
            "vram": "48 GB",
            "manufacturer": "Nvidia",
        },
        "unitCostMicroUSD": 50000,
        "unitCostUSD": 0.05,
        "unitLabel": "minute",
    }
    flavor = flavor_from_hardware(entry)
    assert (flavor.usd_per_hour, flavor.gpu, flavor.gpu_count, flavor.vcpus) == (3.0, "A10G", 2, 24)
    assert flavor.gpu_memory_gib == GPU_TYPES["A10G"].memory_gib


def test_unknown_accelerator_splits_reported_vram() -> None:
    entry = {
        "name": "x",
        "cpu": "8 vCPU",
        "ram": "64 GB",
        "unitCostUSD": 0.01,
        "unitLabel": "minute",
        "accelerator": {"model": "Z9", "quantity": "2", "vram": "64 GB"},
    }
    flavor = flavor_from_hardware(entry)
    assert flavor.gpu == "Z9" and flavor.gpu_memory_gib == pytest.approx(64e9 / 2**30 / 2, abs=0.01)
    assert flavor.usd_per_hour == 0.6


@pytest.mark.parametrize(
    ("product", "expected"),
    [
        ("NVIDIA-H100-80GB-HBM3", "H100"),
        ("NVIDIA-A10G", "A10G"),
        ("Tesla-T4", "T4"),
        ("NVIDIA-L4", "L4"),
        ("NVIDIA-L40S", "L40S"),
        ("NVIDIA-A100-SXM4-80GB", "A100"),
        ("NVIDIA-A100-SXM4-40GB", "A100-40GB"),
        ("NVIDIA-H200", "H200"),
        ("NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition", "RTX PRO 6000"),
    ],
)
def test_gpu_products(product: str, expected: str) -> None:
    kind = gpu_type_for(product)
    assert kind is not None and kind.name == expected


def test_unknown_product() -> None:
    assert gpu_type_for("Radeon-Whatever") is None


@pytest.mark.parametrize("m", BUILTIN_MEASUREMENTS)
def test_measured_figures_are_reproduced(m: ThroughputMeasurement) -> None:
    tps = training_tokens_per_second(
        GPU_TYPES[m.gpu], m.parameters_billions * 1e9, m.peft, m.gradient_checkpointing
    )
    assert tps == pytest.approx(m.tokens_per_second, rel=0.01)


def test_other_gpus_scale_by_peak_tflops() -> None:
    h100 = training_tokens_per_second(GPU_TYPES["H100"], 0.6e9, PeftMode.NONE, False)
    l4 = training_tokens_per_second(GPU_TYPES["L4"], 0.6e9, PeftMode.NONE, False)
    assert l4 / h100 == pytest.approx(121 / 989, rel=0.01)


def test_calibration_measurement_changes_the_estimate() -> None:
    base = training_tokens_per_second(GPU_TYPES["A10G"], 1e9, PeftMode.LORA, True)
    measured = ThroughputMeasurement(
        gpu="A10G",
        parameters_billions=1.0,
        peft=PeftMode.LORA,
        gradient_checkpointing=True,
        tokens_per_second=1234.0,
    )
    calibrated = training_tokens_per_second(
        GPU_TYPES["A10G"], 1e9, PeftMode.LORA, True, measurements=[measured]
    )
    assert calibrated == pytest.approx(1234.0, rel=1e-6) and calibrated != pytest.approx(base)


def test_table_shape_and_trends() -> None:
    table = throughput_table()
    assert set(table) == set(GPU_TYPES)
    for row in table.values():
        speeds = [row[b] for b in TABLE_SIZES_B]
        assert speeds == sorted(speeds, reverse=True)  # bigger models train slower
    assert table["H200"][7.0] > table["A100"][7.0] > table["T4"][7.0]
    lora = training_tokens_per_second(GPU_TYPES["A100"], 7e9, PeftMode.LORA, True)
    full = training_tokens_per_second(GPU_TYPES["A100"], 7e9, PeftMode.NONE, True)
    qlora = training_tokens_per_second(GPU_TYPES["A100"], 7e9, PeftMode.QLORA, True)
    assert full < lora and qlora < lora
