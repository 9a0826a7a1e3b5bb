"""GitOps order and fixes on the real control plane: objects arrive in any order, and the next commit fixes
the spec. Each fixable problem blocks the FineTuneJob (phase `Blocked`, never `Failed`) and heals without
deleting it: a token Secret applied after the job, a conversion added by an edit, a budget raised."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import kubectl
from tests.e2e.conftest import TINY_REPO
from tests.e2e.support import apply, condition, ftj, jobs_in, wait_for
from tests.hub import DEFAULT_TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

# Every GPU of the fake nodes at a price that makes even the tiny run cost more than a cent.
PRICES = json.dumps(
    [{"product": "H100", "usdPerGPUHour": 1_000_000.0}, {"product": "A10G", "usdPerGPUHour": 1_000_000.0}]
)


def blocked_by(reason: str) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        blocked = condition(obj, "Blocked")
        return blocked is not None and blocked.get("status") == "True" and blocked.get("reason") == reason

    return check


def suspended(obj: dict[str, Any]) -> bool:
    return obj.get("status", {}).get("phase") == "Suspended"


def test_fixable_problems_block_and_heal_without_deleting_the_job(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any]
) -> None:
    without_conversion = {k: v for k, v in alpaca_dataset.items() if k != "conversion"}
    secret = {"name": "hf-token"}
    jobs = {
        "secret-later": ftj("secret-later", model=TINY_REPO, dataset=alpaca_dataset, tokenSecretRef=secret),
        "needs-mapping": ftj(
            "needs-mapping", model=TINY_REPO, dataset=without_conversion, tokenSecretRef=secret
        ),
        "over-budget": ftj(
            "over-budget",
            model=TINY_REPO,
            dataset=alpaca_dataset,
            tokenSecretRef=secret,
            budget={"maxCostUSD": 0.01},
        ),
    }
    with run_operator(FTJOB_GPU_PRICES=PRICES):
        for manifest in jobs.values():
            manifest["spec"]["suspend"] = True
            apply(namespace, manifest)
        # The FineTuneJobs came first: all three wait on the missing Secret, none failed.
        for name in jobs:
            obj = wait_for(namespace, name, blocked_by("TokenSecretNotFound"))
            assert obj["status"]["phase"] == "Blocked"
            assert condition(obj, "Failed") is None
        kubectl(
            "create",
            "secret",
            "generic",
            "hf-token",
            "-n",
            namespace,
            f"--from-literal=token={DEFAULT_TOKEN}",
        )
        # The Secret arrives: the first heals on the timer, the others move on to their own problems.
        wait_for(namespace, "secret-later", suspended, timeout=90)
        obj = wait_for(namespace, "needs-mapping", blocked_by("DatasetInvalid"), timeout=90)
        assert "conversion" in condition(obj, "Blocked")["message"]  # type: ignore[index]
        obj = wait_for(namespace, "over-budget", blocked_by("BudgetExceeded"), timeout=90)
        assert "maxCostUSD" in condition(obj, "Blocked")["message"]  # type: ignore[index]
        # The next commit fixes both specs; the edits are picked up at once.
        kubectl(
            "patch", "ftj", "needs-mapping", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"dataset": alpaca_dataset}}),
        )  # fmt: skip
        kubectl(
            "patch", "ftj", "over-budget", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"budget": {"maxCostUSD": 1_000_000}}}),
        )  # fmt: skip
        for name in ("needs-mapping", "over-budget"):
            obj = wait_for(namespace, name, suspended, timeout=60)
            assert condition(obj, "Blocked")["status"] == "False"  # type: ignore[index]
            assert condition(obj, "Failed") is None
        assert jobs_in(namespace) == []  # suspended: nothing submitted, nothing paid


def test_a_dataset_published_later_and_a_spec_fixed_after_failing_both_heal(
    namespace: str, run_operator: Any, token_secret: str, hub: Any, alpaca_dataset: dict[str, Any]
) -> None:
    """Two more GitOps orders: the job names a Hub dataset that is published after it (the world fixes it),
    and a spec that can never work (a path on the operator's host, on the Kubernetes backend) fails until
    the next commit fixes it (a new generation re-evaluates even a failed job)."""
    from huggingface_hub import HfApi

    from tests.example_data import DATASETS
    from tests.hub import DEFAULT_TOKEN

    later = f"tester/published-later-{namespace[-6:]}"
    secret = {"name": token_secret}
    dataset_later = {"name": later, "conversion": "Alpaca"}
    with run_operator():
        apply(
            namespace,
            ftj("data-later", model=TINY_REPO, dataset=dataset_later, tokenSecretRef=secret, suspend=True),
        )
        apply(
            namespace,
            ftj(
                "fixed-later",
                model=TINY_REPO,
                dataset={"name": "/etc/passwd"},
                tokenSecretRef=secret,
                suspend=True,
            ),
        )
        obj = wait_for(namespace, "data-later", blocked_by("DatasetNotFound"))
        assert condition(obj, "Failed") is None
        failed = wait_for(namespace, "fixed-later", lambda o: o.get("status", {}).get("phase") == "Failed")
        assert condition(failed, "Failed")["reason"] == "LocalPathRefused"  # type: ignore[index]
        # The world: the dataset is published. The next commit: the field is fixed.
        api = HfApi(endpoint=hub.url, token=DEFAULT_TOKEN)
        api.create_repo(later, repo_type="dataset", exist_ok=True)
        api.upload_file(
            repo_id=later,
            repo_type="dataset",
            path_or_fileobj=str(DATASETS / "alpaca.json"),
            path_in_repo="a.json",
        )
        kubectl(
            "patch", "ftj", "fixed-later", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"dataset": alpaca_dataset}}),
        )  # fmt: skip
        for name in ("data-later", "fixed-later"):
            obj = wait_for(namespace, name, suspended, timeout=90)
            assert condition(obj, "Failed") is None
