"""The example FineTuneJobs are accepted by the real apiserver with the generated CRD (schema + CEL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, kubectl, wait_crd_established

CRD = ROOT / "crds" / "finetune.dev_finetunejobs.yaml"
EXAMPLES = sorted((ROOT / "examples" / "jobs").glob("*.yaml"))


@pytest.mark.cluster
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_accepted_by_the_apiserver(kubeconfig: Path, namespace: str, path: Path) -> None:
    assert CRD.exists(), "run `make crds`"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    wait_crd_established("finetunejobs.finetune.dev")
    result = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr
    assert "finetunejob.finetune.dev/" in result.stdout and "(server dry run)" in result.stdout
