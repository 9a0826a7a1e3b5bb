"""Model and dataset reads when the stand-in serves files as the Hub does: `/resolve/` of an LFS file answers 302
to a signed CDN URL on another origin, and tree listings come one small page at a time behind `Link` headers.

The product's readers (dataset validation, the planner's model info, the runtime's dataset loading and its
checkpoint download) must get every page and every byte through the real client."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from finetune_operator.planning import model_info_from_hub
from finetune_operator.validation import inspect_dataset
from finetune_training.plan import DatasetSource
from tests.example_data import DATASETS
from tests.hub import DEFAULT_TOKEN, HubServer, client_config, client_env, start_hub
from tests.integration.test_model_info_hub import CONFIG, TENSORS, safetensors_bytes

pytestmark = pytest.mark.hub

DATASET = "tester/paged-data"
MODEL = "tester/paged-model"
UID = "uid-paged"


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf, row_group_size=10)
    return buf.getvalue()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A dataset of three Parquet shards and a model with a checkpoint, listed one tree entry per page."""
    rows = json.loads((DATASETS / "alpaca.json").read_text())
    with start_hub(tmp_path_factory.mktemp("hub")) as server, client_config(server):
        api = HfApi(endpoint=server.url, token=DEFAULT_TOKEN)
        api.create_repo(DATASET, repo_type="dataset")
        api.create_commit(
            DATASET,
            repo_type="dataset",
            commit_message="data",
            operations=[
                CommitOperationAdd("data/train-00000-of-00002.parquet", parquet_bytes(rows[:30])),
                CommitOperationAdd("data/train-00001-of-00002.parquet", parquet_bytes(rows[30:50])),
                CommitOperationAdd("data/test-00000-of-00001.parquet", parquet_bytes(rows[50:])),
            ],
        )
        api.create_repo(MODEL)
        api.create_commit(
            MODEL,
            commit_message="model",
            operations=[
                CommitOperationAdd("model.safetensors", safetensors_bytes(TENSORS)),
                CommitOperationAdd("config.json", json.dumps(CONFIG).encode()),
            ],
        )
        api.create_branch(MODEL, branch="checkpoints")
        api.create_commit(
            MODEL,
            revision="checkpoints",
            commit_message="checkpoint 4",
            operations=[
                CommitOperationAdd(
                    "last-checkpoint/ftjob-checkpoint.json", json.dumps({"jobUid": UID, "step": 4}).encode()
                ),
                CommitOperationAdd("last-checkpoint/trainer_state.json", b'{"global_step": 4}'),
                CommitOperationAdd("last-checkpoint/adapter_model.safetensors", safetensors_bytes(TENSORS)),
            ],
        )
        server.context.tree_page_size = 1
        yield server


@pytest.fixture
def counted(hub: HubServer) -> Iterator[tuple[Any, Any]]:
    """No-op rules that count the tree pages and the CDN reads a test makes."""
    pages = hub.faults.add(r"/tree/", times=10**6)
    cdn = hub.faults.add(r"^/__cdn/", times=10**6)
    yield pages, cdn
    hub.faults.clear()


def test_an_lfs_file_resolves_to_a_signed_cdn_url_on_another_origin(hub: HubServer) -> None:
    import httpx2

    url = f"{hub.url}/datasets/{DATASET}/resolve/main/data/test-00000-of-00001.parquet"
    head = httpx2.head(url, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
    assert head.status_code == 302 and head.headers["X-Linked-Size"]
    location = httpx2.URL(head.headers["Location"])
    assert location.host == "localhost" and location.path.startswith("/__cdn/")
    assert httpx2.get(location).content == hub.store.read_file(
        "dataset", DATASET, "data/test-00000-of-00001.parquet"
    )
    forged = location.copy_set_param("sig", "0" * 64)
    assert httpx2.get(forged).status_code == 403


def test_dataset_validation_reads_every_page_and_the_bytes_behind_the_redirects(
    hub: HubServer, counted: tuple[Any, Any]
) -> None:
    pages, cdn = counted
    report = inspect_dataset(
        DatasetSource(name=DATASET), token=DEFAULT_TOKEN, endpoint=hub.url, sample_rows=100
    )
    assert report.source.splits == ["test", "train"] and report.source.file_count == 2
    assert report.rows == 50 and not report.rows_estimated
    assert pages.hits >= 4 and cdn.hits >= 2


def test_the_planner_reads_the_models_size(hub: HubServer) -> None:
    info = model_info_from_hub(MODEL, endpoint=hub.url, token=DEFAULT_TOKEN)
    assert info.parameters == 126_016 and info.architecture == "Qwen2ForCausalLM"


def test_the_runtime_downloads_its_checkpoint_through_the_cdn(
    hub: HubServer, counted: tuple[Any, Any], tmp_path: Path
) -> None:
    from finetune_training.checkpoints import HubCheckpoints

    _, cdn = counted
    checkpoints = HubCheckpoints(HfApi(endpoint=hub.url, token=DEFAULT_TOKEN), MODEL, UID)
    found = checkpoints.find()
    assert found is not None and found.step == 4
    folder = checkpoints.download(found, tmp_path / "resume")
    adapter = "last-checkpoint/adapter_model.safetensors"
    assert (folder / "adapter_model.safetensors").read_bytes() == hub.store.read_file(
        "model", MODEL, adapter, revision="checkpoints"
    )
    assert cdn.hits >= 1


@pytest.mark.slow
def test_the_runtime_loads_the_hub_dataset(hub: HubServer, tmp_path: Path) -> None:
    script = (
        "from finetune_training.data import load_source\n"
        "from finetune_training.plan import DatasetSource\n"
        f"print(len(load_source(DatasetSource(name={DATASET!r}))))\n"
    )
    env = {**client_env(hub), "HF_HOME": str(tmp_path / "hf-home")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "50"  # the train split: both shards
