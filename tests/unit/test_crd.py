"""The checked-in CRD is what the pydantic models generate, and it is structural."""

from __future__ import annotations

from pathlib import Path

import yaml

from finetune_operator.api.crd import CRD_FILE, build_crd, render

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_crd_is_not_stale() -> None:
    checked_in = (ROOT / "crds" / CRD_FILE).read_text()
    assert checked_in == render(), "crds/ is stale: run `make crds` and commit the result"


def test_chart_carries_the_same_crd() -> None:
    chart_copy = ROOT / "charts" / "finetune-operator" / "crds" / CRD_FILE
    assert chart_copy.read_text() == render(), "the chart's CRD is stale: run `make chart`"


def _walk(schema: dict, path: str = "") -> list[tuple[str, dict]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += _walk(sub, f"{path}.{name}")
    if "items" in schema:
        out += _walk(schema["items"], f"{path}[]")
    return out


def test_every_spec_field_has_a_description_and_the_schema_is_structural() -> None:
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(root["properties"]["spec"], ".spec"):
        if not path.endswith("[]") or node.get("type") == "object":  # scalar list items need none
            assert node.get("description"), f"{path} has no description"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        assert not {"anyOf", "oneOf", "allOf", "$ref", "additionalProperties"} & set(node), path


def test_enums_defaults_and_bounds_are_in_the_schema() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["method"]["enum"] == ["SFT", "DPO", "GRPO", "KTO"]
    assert spec["properties"]["peft"]["default"] == "Auto"
    assert spec["properties"]["backend"]["enum"] == ["Auto", "HFJobs", "Kubernetes", "Local"]
    lr = spec["properties"]["hyperparameters"]["properties"]["learningRate"]
    assert lr["minimum"] == 0 and lr["exclusiveMinimum"] is True
    assert set(spec["required"]) == {"model", "dataset", "method"}


def test_printer_columns_cover_the_table_users_read() -> None:
    columns = [c["name"] for c in build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns[:8] == ["Phase", "Method", "Model", "Hardware", "Progress", "Loss", "Cost", "Age"]
    by_name = {c["name"]: c for c in build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]}
    # Cost is what was spent; the plan's estimate shows with `kubectl get -o wide`.
    assert by_name["Cost"]["jsonPath"] == ".status.cost.actualUSD"
    assert (
        by_name["Estimate"]["jsonPath"] == ".status.plan.estimatedCostUSD" and by_name["Estimate"]["priority"]
    )


def test_generated_yaml_round_trips() -> None:
    assert yaml.safe_load(render()) == build_crd()
