"""Bad specs are refused by the real API server (OpenAPI schema + CEL), each with a message naming the field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from finetune_operator.api.rules import SPEC_RULES, SpecRule
from tests.conftest import ROOT, kubectl, wait_crd_established
from tests.spec_rule_cases import CASES, body

pytestmark = pytest.mark.cluster

GOOD: dict[str, Any] = {
    "apiVersion": "finetune.dev/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "job"},
    "spec": {
        "model": {"name": "Qwen/Qwen3-0.6B"},
        "dataset": {"name": "my-org/chats"},
        "method": "SFT",
    },
}


def _with(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    for path, value in changes.items():
        node = doc["spec"]
        *parents, last = path.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = value
    return doc


DELETE = object()

# (case, manifest, words the error must contain)
BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    ("no model", _with(model=DELETE), ["spec.model", "Required"]),
    ("no dataset", _with(dataset=DELETE), ["spec.dataset", "Required"]),
    ("unknown method", _with(method="PPO"), ["spec.method", "SFT", "DPO", "GRPO"]),
    ("unknown peft", _with(peft="Adapter"), ["spec.peft", "LoRA"]),
    ("unknown backend", _with(backend="Slurm"), ["spec.backend", "HFJobs"]),
    ("rewards without GRPO", _with(rewards=[{"type": "Accuracy"}]), ["spec.rewards", "GRPO"]),
    (
        "reward code over 16 KiB",
        _with(method="GRPO", rewards=[{"type": "Python", "code": "#" * 16385}]),
        ["spec.rewards[0].code", "16384"],
    ),
    (
        "reward code over 32 KiB in all",
        _with(method="GRPO", rewards=[{"type": "Python", "code": "#" * 16000} for _ in range(3)]),
        ["spec.rewards", "32768", "in all"],
    ),
    ("repo id without owner", _with(output={"repo": "just-a-name"}), ["spec.output.repo", "owner/name"]),
    ("flavor without HFJobs", _with(hardware={"flavor": "a10g-large"}), ["spec.hardware.flavor", "HFJobs"]),
    (
        "flavor and gpuCount",
        _with(backend="HFJobs", hardware={"flavor": "a10g-large", "gpuCount": 2}),
        ["spec.hardware", "not both"],
    ),
    ("gpuCount with HFJobs", _with(backend="HFJobs", hardware={"gpuCount": 2}), ["gpuCount", "flavor"]),
    ("gguf without repo", _with(output={"gguf": ["Q4_K_M"]}), ["spec.output.gguf", "output.repo"]),
    (
        "unknown quantization",
        _with(output={"repo": "a/b", "gguf": ["Q4_K_X"]}),
        ["spec.output.gguf", "Q4_K_M"],
    ),
    ("negative learning rate", _with(hyperparameters={"learningRate": -0.1}), ["learningRate"]),
    ("maxLength too small", _with(hyperparameters={"maxLength": 4}), ["maxLength", "16"]),
    ("bad timeout", _with(budget={"timeout": "four hours"}), ["spec.budget.timeout", "4h"]),
    ("negative budget", _with(budget={"maxCostUSD": -5}), ["maxCostUSD"]),
    ("Python reward without code", _with(method="GRPO", rewards=[{"type": "Python"}]), ["function", "code"]),
    ("lora with peft None", _with(peft="None", lora={"r": 8}), ["spec.lora", "peft"]),
    ("GRPO settings on SFT", _with(hyperparameters={"numGenerations": 4}), ["numGenerations", "GRPO"]),
    ("packing on DPO", _with(method="DPO", hyperparameters={"packing": True}), ["packing", "SFT"]),
    ("invalid secret name", _with(tokenSecretRef={"name": "Not_A_Name"}), ["spec.tokenSecretRef.name"]),
    ("unknown field", _with(epochs=3), ["unknown field", "spec.epochs"]),
    ("empty model name", _with(model={"name": ""}), ["spec.model.name"]),
    ("blank model name", _with(model={"name": " "}), ["spec.model.name", "owner/name"]),
    ("model name with a space", _with(model={"name": "Qwen/Qwen3 0.6B"}), ["spec.model.name"]),
    ("blank dataset name", _with(dataset={"name": "  "}), ["spec.dataset.name", "owner/name"]),
    ("dataset name with two slashes", _with(dataset={"name": "a//b"}), ["spec.dataset.name"]),
]


@pytest.fixture(scope="module")
def crd_installed(kubeconfig: object) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    wait_crd_established("finetunejobs.finetune.dev")


def test_the_good_spec_is_accepted(crd_installed: None, namespace: str) -> None:
    kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(GOOD))


@pytest.mark.parametrize(("case", "manifest", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_spec_is_refused_with_a_message_naming_the_field(
    crd_installed: None, namespace: str, case: str, manifest: dict[str, Any], words: list[str]
) -> None:
    result = kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=False
    )
    assert result.returncode != 0, f"{case}: accepted"
    for word in words:
        assert word in result.stderr, f"{case}: {word!r} not in {result.stderr!r}"


def test_training_fields_are_immutable_once_submitted_but_suspend_and_budget_may_change(
    crd_installed: None, namespace: str
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(GOOD))
    # Before submission the spec may still change (e.g. while suspended).
    kubectl("patch", "ftj", "job", "-n", namespace, "--type=merge", "-p", '{"spec":{"method":"DPO"}}')
    submitted = {"status": {"backendRef": {"kind": "Job", "id": "ftj-job-1234"}}}
    kubectl("patch", "ftj", "job", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps(submitted))  # fmt: skip
    refused = kubectl("patch", "ftj", "job", "-n", namespace, "--type=merge", "-p",
                      '{"spec":{"model":{"name":"other/model"}}}', check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "spec.model" in refused.stderr and "cannot change once the job was submitted" in refused.stderr
    kubectl("patch", "ftj", "job", "-n", namespace, "--type=merge", "-p",
            '{"spec":{"suspend":true,"budget":{"maxCostUSD":50}}}')  # fmt: skip


def test_kubectl_explain_documents_the_fields(crd_installed: None) -> None:
    out = kubectl("explain", "ftj.spec.peft").stdout
    assert "LoRA" in out and "QLoRA" in out and "fit" in out
    out = kubectl("explain", "ftj.spec.dataset.conversion").stdout
    assert "Alpaca" in out


# The rule table (finetune_operator.api.rules), CEL side: the CRD's CEL refuses each rule's breaking spec with
# the rule's message, and admits the satisfying one (the Python side: tests/unit/test_spec_rules.py).
def _manifest(spec: dict[str, Any]) -> str:
    return json.dumps({**GOOD, "spec": spec})


@pytest.mark.parametrize("rule", SPEC_RULES, ids=lambda r: r.name)
def test_each_spec_rule_runs_on_the_api_server(crd_installed: None, namespace: str, rule: SpecRule) -> None:
    bad, good = CASES[rule.name]
    apply = ("apply", "--dry-run=server", "-n", namespace, "-f", "-")
    refused = kubectl(*apply, input=_manifest(body(bad)), check=False)
    assert refused.returncode != 0, f"{rule.name}: the breaking spec was admitted"
    assert rule.message in refused.stderr, refused.stderr
    assert rule.path.removesuffix("[]") in refused.stderr, refused.stderr
    admitted = kubectl(*apply, input=_manifest(body(good)), check=False)
    assert admitted.returncode == 0, f"{rule.name}: {admitted.stderr}"
