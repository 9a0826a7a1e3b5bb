"""The operator's finalizer goes on through the real API server without losing anyone else's: a JSON patch that
tests the finalizers it read, refused (and retried from a fresh read) when they changed meanwhile or the job
is being deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from finetune_operator import FINALIZER, GROUP, PLURAL, VERSION
from finetune_operator.api.resource import FineTuneJob
from finetune_operator.errors import RetryLater
from finetune_operator.lifecycle.status_writer import StatusWriter
from tests.conftest import ROOT, kubectl, wait_crd_established

pytestmark = pytest.mark.cluster

OTHER = "example.com/someone-elses"


@pytest.fixture(scope="module")
def writer(kubeconfig: Path) -> Iterator[StatusWriter]:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    wait_crd_established("finetunejobs.finetune.dev")
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield StatusWriter(api)
    api.close()


def create(namespace: str, name: str, finalizers: list[str] | None = None) -> FineTuneJob:
    manifest: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneJob",
        "metadata": {"name": name, "finalizers": finalizers or []},
        "spec": {"model": {"name": "tester/tiny"}, "dataset": {"name": "tester/data"}, "method": "SFT"},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    return read(namespace, name)


def read(namespace: str, name: str) -> FineTuneJob:
    obj = json.loads(kubectl("get", PLURAL, name, "-n", namespace, "-o", "json").stdout)
    return FineTuneJob.from_body(obj)


def release(namespace: str, name: str) -> None:
    kubectl("patch", PLURAL, name, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')


def test_the_finalizer_is_added_once_and_keeps_the_others(writer: StatusWriter, namespace: str) -> None:
    job = create(namespace, "held", [OTHER])
    version = writer.hold(job)
    assert version  # the new resourceVersion, for the pass to start its status write from
    assert read(namespace, "held").metadata.finalizers == [OTHER, FINALIZER]
    assert writer.hold(read(namespace, "held")) is None  # held already: no write
    release(namespace, "held")


def test_a_stale_view_of_the_finalizers_overwrites_nothing(writer: StatusWriter, namespace: str) -> None:
    stale = create(namespace, "raced")
    kubectl("patch", PLURAL, "raced", "-n", namespace, "--type=json", "-p",
            json.dumps([{"op": "add", "path": "/metadata/finalizers", "value": [OTHER]}]))  # fmt: skip
    with pytest.raises(RetryLater):
        writer.hold(stale)  # it read no finalizers; someone added one since
    assert read(namespace, "raced").metadata.finalizers == [OTHER]
    writer.hold(read(namespace, "raced"))  # the next pass reads afresh
    assert read(namespace, "raced").metadata.finalizers == [OTHER, FINALIZER]
    release(namespace, "raced")


def test_a_job_being_deleted_takes_no_finalizer(writer: StatusWriter, namespace: str) -> None:
    create(namespace, "leaving", [OTHER])
    kubectl("delete", PLURAL, "leaving", "-n", namespace, "--wait=false")
    leaving = read(namespace, "leaving")
    assert leaving.metadata.deletion_timestamp
    with pytest.raises(RetryLater):
        writer.hold(leaving)
    assert read(namespace, "leaving").metadata.finalizers == [OTHER]
    release(namespace, "leaving")
