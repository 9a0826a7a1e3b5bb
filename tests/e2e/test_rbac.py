"""The operator with the chart's namespaced RBAC (`watchNamespaces`): it trains with exactly those rights, sees
nothing outside its namespaces, and a missing grant shows as Blocked/Forbidden that heals once granted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kubectl
from tests.e2e.conftest import TINY_REPO, ChartIdentity, chart_identity
from tests.e2e.support import apply, condition, ftj, phase_is, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


@pytest.fixture
def chart_rbac(namespace: str, kubeconfig: Path, tmp_path: Path) -> Iterator[ChartIdentity]:
    """Namespaced mode, whatever FTJOB_E2E_RBAC says: only the test's namespace is watched."""
    identity = chart_identity(namespace, tmp_path, namespaced=True)
    yield identity
    kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=identity.manifest, check=False)
    kubectl("delete", "namespace", identity.release_namespace, "--wait=false", check=False)


def as_operator(identity: ChartIdentity, *args: str) -> str:
    result = kubectl("--kubeconfig", str(identity.kubeconfig), *args, check=False)
    return (result.stdout + result.stderr).strip()


def test_the_operator_is_the_charts_service_account_and_sees_no_other_namespace(
    namespace: str, chart_rbac: ChartIdentity
) -> None:
    assert chart_rbac.service_account in as_operator(chart_rbac, "auth", "whoami")
    assert as_operator(chart_rbac, "auth", "can-i", "get", "secrets", "-n", namespace) == "yes"
    assert as_operator(chart_rbac, "auth", "can-i", "get", "secrets", "-n", "default") == "no"
    assert as_operator(chart_rbac, "auth", "can-i", "list", "secrets", "-n", namespace) == "no"


def test_a_missing_grant_blocks_as_forbidden_naming_it_and_heals_when_granted(
    namespace: str,
    run_operator: Any,
    chart_rbac: ChartIdentity,
    alpaca_dataset: dict[str, Any],
    token_secret: str,
) -> None:
    role = f"{chart_rbac.service_account.rsplit(':', 1)[1]}-jobs"
    found = json.loads(kubectl("get", "role", role, "-n", namespace, "-o", "json").stdout)
    found["rules"] = [r for r in found["rules"] if "secrets" not in r["resources"]]
    kubectl("replace", "-f", "-", input=json.dumps(found))  # an admin trimmed the Role too far
    manifest = ftj("rbac", model=TINY_REPO, dataset=alpaca_dataset, tokenSecretRef={"name": token_secret})
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(namespace, "rbac", phase_is("Blocked", "Failed", "Succeeded"))
        assert obj["status"]["phase"] == "Blocked", obj["status"]
        blocked = condition(obj, "Blocked")
        assert blocked is not None and blocked["reason"] == "Forbidden", blocked
        assert f"`get` `secrets` in namespace `{namespace}`" in blocked["message"]
        assert "watchNamespaces" in blocked["message"]
        kubectl("apply", "-f", "-", input=chart_rbac.manifest)  # the chart's Role restored
        obj = wait_for(namespace, "rbac", phase_is("Succeeded", "Failed"), timeout=240)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
