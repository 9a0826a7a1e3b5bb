"""A job's pushed outputs are confirmed on the Hub (the stand-in, through the real client), not read from a log:
the runtime's commit carries the FineTuneJob's UID, and the operator looks for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.hub import WEIGHT_SUFFIXES, confirm_pushed
from finetune_training.events import commit_trailer
from tests.hub import DEFAULT_TOKEN, HubServer, client_config, start_hub

pytestmark = pytest.mark.hub

UID = "6f1c2a8e-0000-4000-8000-00000000abcd"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with start_hub(tmp_path_factory.mktemp("hub")) as server, client_config(server, token=DEFAULT_TOKEN):
        yield server


def push(hub: HubServer, repo: str, files: dict[str, bytes], tmp_path: Path, uid: str = UID) -> None:
    """As the runtime pushes: one commit whose description carries the job's trailer."""
    api = HfApi(endpoint=hub.url, token=DEFAULT_TOKEN)
    api.create_repo(repo, private=True, exist_ok=True)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    api.upload_folder(
        repo_id=repo, folder_path=tmp_path, commit_message="SFT", commit_description=commit_trailer(uid)
    )


def confirm(hub: HubServer, repo: str, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES) -> list[str]:
    return confirm_pushed(repo, job_uid=UID, token=DEFAULT_TOKEN, endpoint=hub.url, suffixes=suffixes)


def test_a_pushed_adapter_and_gguf_are_confirmed(hub: HubServer, tmp_path: Path) -> None:
    push(hub, "tester/adapter", {"adapter_model.safetensors": b"\0" * 64, "README.md": b"card"}, tmp_path)
    assert confirm(hub, "tester/adapter") == ["adapter_model.safetensors"]
    (tmp_path / "adapter_model.safetensors").unlink()
    push(hub, "tester/adapter-GGUF", {"m-Q4_K_M.gguf": b"GGUF"}, tmp_path)
    assert confirm(hub, "tester/adapter-GGUF", (".gguf",)) == ["m-Q4_K_M.gguf"]


def test_missing_repo_or_no_weights_is_model_not_pushed(hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist on the Hub") as err:
        confirm(hub, "tester/never-pushed")
    assert err.value.reason == "ModelNotPushed"
    push(hub, "tester/card-only", {"README.md": b"card"}, tmp_path)
    with pytest.raises(SpecError, match=r"holds no \.safetensors or \.bin files") as err:
        confirm(hub, "tester/card-only")
    assert err.value.reason == "ModelNotPushed"


def test_weights_another_job_pushed_are_not_this_jobs_output(hub: HubServer, tmp_path: Path) -> None:
    push(hub, "tester/someone-elses", {"model.safetensors": b"\0" * 64}, tmp_path, uid="another-job")
    with pytest.raises(SpecError, match="no commit in `tester/someone-elses` comes from this job") as err:
        confirm(hub, "tester/someone-elses")
    assert err.value.reason == "ModelNotPushed"


def test_a_hub_outage_is_asked_again_not_taken_as_absent(hub: HubServer, tmp_path: Path) -> None:
    push(hub, "tester/during-outage", {"model.safetensors": b"\0" * 64}, tmp_path)
    rule = hub.faults.server_error(r"/api/models/tester/during-outage", status=503, times=20)
    with pytest.raises(RetryLater):
        confirm(hub, "tester/during-outage")
    assert rule.hits >= 1
    hub.faults.clear()
    assert confirm(hub, "tester/during-outage") == ["model.safetensors"]
