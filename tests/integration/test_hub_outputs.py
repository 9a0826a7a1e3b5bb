"""A job's pushed model is confirmed on the Hub (the stand-in, through the real client), not read from a log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.hub import confirm_pushed_model
from tests.hub import DEFAULT_TOKEN, HubServer, client_config, start_hub

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with start_hub(tmp_path_factory.mktemp("hub")) as server, client_config(server, token=DEFAULT_TOKEN):
        yield server


def push(hub: HubServer, repo: str, files: dict[str, bytes], tmp_path: Path) -> None:
    api = HfApi(endpoint=hub.url, token=DEFAULT_TOKEN)
    api.create_repo(repo, private=True, exist_ok=True)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    api.upload_folder(repo_id=repo, folder_path=tmp_path)


def confirm(hub: HubServer, repo: str, since: datetime | None = None) -> str:
    return confirm_pushed_model(repo, token=DEFAULT_TOKEN, endpoint=hub.url, since=since)


def test_a_pushed_adapter_is_confirmed_with_its_url(hub: HubServer, tmp_path: Path) -> None:
    started = datetime.now(UTC)
    push(hub, "tester/adapter", {"adapter_model.safetensors": b"\0" * 64, "README.md": b"card"}, tmp_path)
    assert confirm(hub, "tester/adapter", since=started) == f"{hub.url}/tester/adapter"


def test_missing_repo_or_no_weights_is_model_not_pushed(hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist on the Hub") as err:
        confirm(hub, "tester/never-pushed")
    assert err.value.reason == "ModelNotPushed"
    push(hub, "tester/card-only", {"README.md": b"card"}, tmp_path)
    with pytest.raises(SpecError, match="holds no weights") as err:
        confirm(hub, "tester/card-only")
    assert err.value.reason == "ModelNotPushed"


def test_weights_older_than_the_job_are_not_this_runs_push(hub: HubServer, tmp_path: Path) -> None:
    push(hub, "tester/old-model", {"model.safetensors": b"\0" * 64}, tmp_path)
    with pytest.raises(SpecError, match="before this job started") as err:
        confirm(hub, "tester/old-model", since=datetime.now(UTC) + timedelta(hours=1))
    assert err.value.reason == "ModelNotPushed"


def test_a_hub_outage_is_asked_again_not_taken_as_absent(hub: HubServer, tmp_path: Path) -> None:
    push(hub, "tester/during-outage", {"model.safetensors": b"\0" * 64}, tmp_path)
    rule = hub.faults.server_error(r"/api/models/tester/during-outage", status=503, times=20)
    with pytest.raises(RetryLater):
        confirm(hub, "tester/during-outage")
    assert rule.hits >= 1
    hub.faults.clear()
    assert confirm(hub, "tester/during-outage").endswith("/tester/during-outage")
