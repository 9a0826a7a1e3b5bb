"""The FineTuneJobs in examples/jobs are valid specs covering SFT, DPO and GRPO, and the GitOps manifests
point at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from finetune_operator.api.spec import FineTuneJobSpec
from finetune_training.plan import Conversion, Method, RewardType

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "examples" / "jobs"
GITOPS = ROOT / "examples" / "gitops"
EXAMPLES = sorted(JOBS.glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    """The one FineTuneJob in `path`."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(docs) == 1, f"{path.name}: one FineTuneJob per file"
    return dict(docs[0])


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_a_valid_finetunejob(path: Path) -> None:
    job = load(path)
    assert job["apiVersion"] == "finetune.dev/v1alpha1" and job["kind"] == "FineTuneJob"
    assert job["metadata"]["name"] == job["metadata"]["name"].lower()
    assert "namespace" not in job["metadata"], "examples take the namespace they are applied to"
    spec = FineTuneJobSpec.model_validate(job["spec"])
    # Examples are copied and applied as they are: they plan first and launch nothing.
    assert spec.suspend is True


def test_examples_cover_each_method_and_dataset_shape() -> None:
    specs = {p.stem: FineTuneJobSpec.model_validate(load(p)["spec"]) for p in EXAMPLES}
    shapes = {(s.method, s.dataset.conversion) for s in specs.values()}
    assert (Method.SFT, Conversion.ALPACA) in shapes
    assert (Method.SFT, None) in shapes  # a messages dataset needs no conversion
    assert (Method.DPO, Conversion.SHAREGPT_PREFERENCE) in shapes
    assert (Method.GRPO, Conversion.QUESTION_ANSWER) in shapes
    grpo = next(s for s in specs.values() if s.method == Method.GRPO)
    assert grpo.rewards and grpo.rewards[0].type == RewardType.ACCURACY


def test_gitops_sources_point_at_the_jobs_folder() -> None:
    app = yaml.safe_load((GITOPS / "argocd-application.yaml").read_text())
    assert app["kind"] == "Application" and app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["spec"]["source"]["path"] == "examples/jobs"
    assert app["spec"]["syncPolicy"]["automated"]["prune"] is False
    flux = list(yaml.safe_load_all((GITOPS / "flux-kustomization.yaml").read_text()))
    kustomization = next(d for d in flux if d["kind"] == "Kustomization")
    assert kustomization["spec"]["path"] == "./examples/jobs"
    assert kustomization["spec"]["prune"] is False
    checks = kustomization["spec"]["healthCheckExprs"][0]
    assert (
        checks["kind"] == "FineTuneJob" and "Complete" in checks["current"] and "Failed" in checks["failed"]
    )
    # The folder GitOps tools apply holds FineTuneJobs only.
    assert {load(p)["kind"] for p in JOBS.iterdir()} == {"FineTuneJob"}
