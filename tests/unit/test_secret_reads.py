"""Token Secrets are read once per period and shared by every job naming them, never once per job per tick;
what is missing is never remembered, and the cache never shows a value."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from finetune_operator.cluster.gateway import KubeGateway
from finetune_operator.errors import SpecError


class FakeCore:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.version = 1
        self.gets = 0

    def put(self, namespace: str, name: str, **data: str) -> None:
        self.version += 1
        self.secrets[namespace, name] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        self.gets += 1
        if (namespace, name) not in self.secrets:
            raise ApiException(status=404, reason="Not Found")
        return client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, resource_version=str(self.version)),
            data=dict(self.secrets[namespace, name]),
        )


@pytest.fixture
def gateway() -> tuple[KubeGateway, FakeCore, list[float]]:
    clock = [0.0]
    kube = KubeGateway(client.ApiClient(), secret_recheck_seconds=60, clock=lambda: clock[0])
    core = FakeCore()
    kube.core = core  # type: ignore[assignment]
    return kube, core, clock


def test_many_jobs_and_ticks_read_a_secret_once_per_period(
    gateway: tuple[KubeGateway, FakeCore, list[float]],
) -> None:
    kube, core, clock = gateway
    core.put("team-a", "hf-token", token="hf_one\n")
    for _ in range(1000):  # 1,000 jobs (or ticks) naming the same Secret
        assert kube.read_secret_value("team-a", "hf-token", "token") == "hf_one"
    assert core.gets == 1
    core.put("team-a", "hf-token", token="hf_two")  # rotated
    clock[0] = 30.0
    assert kube.read_secret_value("team-a", "hf-token", "token") == "hf_one"  # within the period
    clock[0] = 61.0
    assert kube.read_secret_value("team-a", "hf-token", "token") == "hf_two"
    assert core.gets == 2
    kube.forget_secret("team-a", "hf-token")  # a refused token: read afresh at the next check
    kube.read_secret_value("team-a", "hf-token", "token")
    assert core.gets == 3


def test_missing_secrets_and_keys_are_never_remembered(
    gateway: tuple[KubeGateway, FakeCore, list[float]],
) -> None:
    kube, core, _ = gateway
    with pytest.raises(SpecError, match="does not exist") as missing:
        kube.read_secret_value("team-a", "hf-token", "token")
    assert missing.value.reason == "TokenSecretNotFound"
    core.put("team-a", "hf-token", other="x")  # GitOps applies it seconds later, with the wrong key
    with pytest.raises(SpecError) as no_key:
        kube.read_secret_value("team-a", "hf-token", "token")
    assert no_key.value.reason == "TokenSecretKeyMissing" and "['other']" in no_key.value.message
    core.put("team-a", "hf-token", other="x", token="hf_ok")  # and fixed by the next commit
    assert kube.read_secret_value("team-a", "hf-token", "token") == "hf_ok"
    assert core.gets == 3


def test_the_cache_never_shows_a_value(gateway: tuple[KubeGateway, FakeCore, list[float]]) -> None:
    kube, core, _ = gateway
    core.put("team-a", "hf-token", token="hf_secret_value")
    kube.read_secret_value("team-a", "hf-token", "token")
    shown = repr(kube._secrets) + str(kube._secrets)
    assert "hf_secret_value" not in shown and base64.b64encode(b"hf_secret_value").decode() not in shown
