"""The stand-in, exercised only through the real ``huggingface_hub`` 2.4.0 client.

Uploads need ``HF_HUB_DISABLE_XET=1`` (the stand-in speaks LFS, not Xet); the ``hub`` fixture sets it through
``client_config``, and the project sets it wherever it points the client at the stand-in.
"""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    HfFileSystem,
    JobStage,
    RepoFile,
    hf_hub_download,
)
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils import parse_ratelimit_headers

from tests.hub.auth import DEFAULT_TOKEN
from tests.hub.server import HubServer

pytestmark = pytest.mark.hub

NS = "tester"
IMAGE = "python:3.12"


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A valid safetensors file of zeros: name → (dtype, shape)."""
    itemsize = {"F32": 4, "BF16": 2, "F16": 2, "I64": 8}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = 1
        for dim in shape:
            n *= dim
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + n * itemsize[dtype]],
        }
        offset += n * itemsize[dtype]
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


TENSORS = {"embed.weight": ("F32", [16, 8]), "lm_head.weight": ("BF16", [16, 8]), "norm.weight": ("F32", [8])}


@pytest.fixture(scope="module")
def api(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.url, token=DEFAULT_TOKEN)


@pytest.fixture(scope="module")
def model_repo(hub: HubServer, api: HfApi, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A model repo holding a safetensors file, a config, a card and an LFS-size binary."""
    repo_id = f"{NS}/tiny-model"
    api.create_repo(repo_id)
    folder = tmp_path_factory.mktemp("model")
    (folder / "model.safetensors").write_bytes(safetensors_bytes(TENSORS))
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"})
    )
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags: [sft, trl]\n---\n# Tiny\n")
    (folder / "big.bin").write_bytes(os.urandom(hub.store.lfs_threshold + 1024))
    api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="Upload tiny model")
    return repo_id


def test_whoami(api: HfApi) -> None:
    me = api.whoami()
    assert me["name"] == "tester"
    assert [org["name"] for org in me["orgs"]] == ["test-org"]
    assert me["auth"]["accessToken"]["role"] == "write"


def test_create_repo_again_with_exist_ok_returns_its_url(hub: HubServer, api: HfApi) -> None:
    first = api.create_repo(f"{NS}/twice", exist_ok=True)
    again = api.create_repo(f"{NS}/twice", exist_ok=True)  # the client reads `url` from the 409 body
    assert str(again) == str(first) == f"{hub.url}/{NS}/twice"
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(f"{NS}/twice")
    assert exc.value.response.status_code == 409


def test_a_rate_limited_whoami_says_when_the_window_resets(hub: HubServer, api: HfApi) -> None:
    hub.faults.rate_limit(r"^/api/whoami", retry_after=None, reset=55)
    with pytest.raises(HfHubHTTPError) as info:
        api.whoami()
    limit = parse_ratelimit_headers(info.value.response.headers)
    assert info.value.response.status_code == 429 and "retry-after" not in info.value.response.headers
    assert limit is not None and (limit.remaining, limit.reset_in_seconds, limit.limit) == (0, 55, 500)


def test_whoami_rejects_unknown_token(hub: HubServer) -> None:
    with pytest.raises(HfHubHTTPError) as info:
        HfApi(endpoint=hub.url, token="hf_not_a_token").whoami()
    assert info.value.response.status_code == 401


def test_upload_folder_then_download(hub: HubServer, api: HfApi, model_repo: str, tmp_path: Path) -> None:
    files = hub.store.list_files("model", model_repo)
    assert files == [".gitattributes", "README.md", "big.bin", "config.json", "model.safetensors"]
    commits = hub.store.commits("model", model_repo)
    assert [c.title for c in commits] == ["Upload tiny model", "initial commit"]
    tree = {f.path: f for f in api.list_repo_tree(model_repo, recursive=True) if isinstance(f, RepoFile)}
    assert tree["big.bin"].lfs is not None and tree["model.safetensors"].lfs is not None
    assert tree["config.json"].lfs is None
    for name in ("big.bin", "config.json", "model.safetensors"):
        local = hf_hub_download(model_repo, name, endpoint=hub.url, token=DEFAULT_TOKEN, cache_dir=tmp_path)
        assert Path(local).read_bytes() == hub.store.read_file("model", model_repo, name)


def test_lfs_downloads_go_through_the_cdn_redirect(
    hub: HubServer, api: HfApi, model_repo: str, tmp_path: Path
) -> None:
    cdn = hub.faults.add(r"^/__cdn/", times=1000)  # a no-op rule: counts the CDN reads
    local = hf_hub_download(model_repo, "big.bin", endpoint=hub.url, token=DEFAULT_TOKEN, cache_dir=tmp_path)
    assert Path(local).read_bytes() == hub.store.read_file("model", model_repo, "big.bin")
    assert cdn.hits == 1


def test_tree_listings_span_pages_with_link_headers(hub: HubServer, api: HfApi, model_repo: str) -> None:
    pages = hub.faults.add(r"/tree/", times=1000)
    hub.context.tree_page_size = 2
    try:
        paths = sorted(f.path for f in api.list_repo_tree(model_repo, recursive=True))
    finally:
        hub.context.tree_page_size = 1000
    assert paths == hub.store.list_files("model", model_repo) and pages.hits == 3


def test_model_info_reports_safetensors_parameters_and_card(api: HfApi, model_repo: str) -> None:
    info = api.model_info(model_repo)
    assert info.safetensors is not None
    assert info.safetensors.parameters == {"F32": 16 * 8 + 8, "BF16": 16 * 8}
    assert info.safetensors.total == 16 * 8 * 2 + 8
    assert info.card_data is not None and info.card_data.license == "apache-2.0"
    assert info.config == {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}
    assert info.sha == api.list_repo_commits(model_repo)[0].commit_id
    assert {s.rfilename for s in info.siblings or []} >= {"model.safetensors", "big.bin"}


def test_get_safetensors_metadata_reads_the_header(api: HfApi, model_repo: str) -> None:
    meta = api.get_safetensors_metadata(model_repo)
    assert not meta.sharded
    tensors = meta.files_metadata["model.safetensors"].tensors
    assert {name: (t.dtype, t.shape) for name, t in tensors.items()} == {
        name: (dtype, shape) for name, (dtype, shape) in TENSORS.items()
    }
    assert meta.parameter_count == {"F32": 136, "BF16": 128}


def test_hf_file_system_reads_parquet_footer(hub: HubServer, api: HfApi) -> None:
    repo_id = f"{NS}/conversations"
    api.create_repo(repo_id, repo_type="dataset")
    table = pa.table({"id": list(range(1000)), "text": [f"row {i}" for i in range(1000)]})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=100)
    api.upload_file(
        path_or_fileobj=buf.getvalue(),
        path_in_repo="data/train.parquet",
        repo_id=repo_id,
        repo_type="dataset",
    )
    ranges = hub.faults.add(r"/resolve/", times=1000)  # a no-op rule: counts the ranged GETs
    fs = HfFileSystem(endpoint=hub.url, token=DEFAULT_TOKEN)
    assert fs.ls(f"datasets/{repo_id}/data", detail=False) == [f"datasets/{repo_id}/data/train.parquet"]
    with fs.open(f"datasets/{repo_id}/data/train.parquet", "rb", block_size=4096) as fh:
        parquet = pq.ParquetFile(fh)
        assert parquet.metadata.num_rows == 1000
        assert parquet.metadata.num_row_groups == 10
        assert parquet.read_row_group(0).column("id").to_pylist() == list(range(100))
    assert ranges.hits >= 1


def test_private_repo_is_not_found_without_access(hub: HubServer, api: HfApi, tmp_path: Path) -> None:
    repo_id = f"{NS}/secret-model"
    api.create_repo(repo_id, private=True)
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo_id)
    assert api.model_info(repo_id).private is True
    anonymous = HfApi(endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "config.json", endpoint=hub.url, token=False, cache_dir=tmp_path)
    hub.tokens.add("hf_other_user", "other")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token="hf_other_user").model_info(repo_id)


def test_gated_repo_raises_gated_error_until_access_is_granted(
    hub: HubServer, api: HfApi, tmp_path: Path
) -> None:
    repo_id = f"{NS}/gated-model"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo_id)
    api.update_repo_settings(repo_id, gated="manual")
    hub.tokens.add("hf_gated_user", "gateduser")
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo_id, "config.json", endpoint=hub.url, token="hf_gated_user", cache_dir=tmp_path)
    hub.store.grant_access("model", repo_id, "gateduser")
    path = hf_hub_download(
        repo_id, "config.json", endpoint=hub.url, token="hf_gated_user", cache_dir=tmp_path
    )
    assert Path(path).read_bytes() == b"{}"


def test_writes_need_a_write_token(hub: HubServer) -> None:
    hub.tokens.add("hf_read_only", "tester", orgs=("test-org",), role="read")
    with pytest.raises(HfHubHTTPError) as info:
        HfApi(endpoint=hub.url, token="hf_read_only").create_repo(f"{NS}/nope")
    assert info.value.response.status_code == 403


def test_checkpoints_branch_commit_and_delete(hub: HubServer, api: HfApi) -> None:
    repo_id = f"{NS}/with-checkpoints"
    api.create_repo(repo_id)
    api.create_branch(repo_id, branch="checkpoints")
    api.create_commit(
        repo_id,
        [
            CommitOperationAdd("checkpoint-10/trainer_state.json", b'{"global_step": 10}'),
            CommitOperationAdd("checkpoint-10/adapter_model.safetensors", safetensors_bytes(TENSORS)),
        ],
        commit_message="checkpoint 10",
        revision="checkpoints",
    )
    refs = {b.name: b.target_commit for b in api.list_repo_refs(repo_id).branches}
    assert set(refs) == {"main", "checkpoints"}
    assert refs["checkpoints"] == hub.store.commits("model", repo_id, "checkpoints")[0].id
    assert hub.store.list_files("model", repo_id) == [".gitattributes"]
    entries = api.list_repo_tree(repo_id, revision="checkpoints", path_in_repo="checkpoint-10")
    assert sorted(e.path for e in entries) == [
        "checkpoint-10/adapter_model.safetensors",
        "checkpoint-10/trainer_state.json",
    ]
    api.create_commit(
        repo_id,
        [CommitOperationDelete("checkpoint-10/")],
        commit_message="drop checkpoint",
        revision="checkpoints",
    )
    assert hub.store.list_files("model", repo_id, "checkpoints") == [".gitattributes"]


def test_injected_429_is_retried_by_the_client(hub: HubServer, api: HfApi) -> None:
    # Calls made through http_backoff (preupload, LFS, list_jobs, tree pages) retry 429 after Retry-After+1s.
    repo_id = f"{NS}/rate-limited"
    api.create_repo(repo_id)
    rule = hub.faults.rate_limit(r"/preupload/", retry_after=0)
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id=repo_id)
    assert rule.hits == 1
    assert hub.store.read_file("model", repo_id, "hello.txt") == b"hello"


def test_injected_errors_surface_where_the_client_does_not_retry(
    hub: HubServer, api: HfApi, model_repo: str
) -> None:
    # model_info uses a plain GET: a 429 or 5xx surfaces as HfHubHTTPError with that status.
    hub.faults.rate_limit(r"^/api/models/", retry_after=7)
    with pytest.raises(HfHubHTTPError) as info:
        api.model_info(model_repo)
    assert info.value.response.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    hub.faults.server_error(r"^/api/models/", status=503)
    with pytest.raises(HfHubHTTPError) as info:
        api.model_info(model_repo)
    assert info.value.response.status_code == 503
    assert api.model_info(model_repo).id == model_repo


# ---- Jobs --------------------------------------------------------------------------------------


def test_run_job_completes_with_logs_env_and_hidden_secrets(hub: HubServer, api: HfApi) -> None:
    script = "import os; print(1); e = os.environ; print(e['GREETING'], e['HF_ENDPOINT'], 'HF_TOKEN' in e)"
    job = api.run_job(
        image=IMAGE,
        command=["python", "-c", script],
        env={"GREETING": "hi"},
        secrets={"HF_TOKEN": DEFAULT_TOKEN},
        flavor="a10g-small",
        namespace=NS,
    )
    assert job.status.stage in (JobStage.SCHEDULING, JobStage.RUNNING)
    done = api.wait_for_job(job.id, namespace=NS, poll_interval=0.2, timeout=120)
    assert done.status.stage == JobStage.COMPLETED
    assert done.flavor == "a10g-small" and done.owner.name == NS
    assert done.started_at is not None and done.finished_at is not None
    assert done.secrets == {"HF_TOKEN": None}
    logs = list(api.fetch_job_logs(job_id=job.id, namespace=NS))
    assert logs == ["1", f"hi {hub.url} True"]
    assert DEFAULT_TOKEN not in json.dumps([done.environment, done.secrets])


def test_failing_job_ends_in_error_with_its_exit_code_not_its_output(api: HfApi) -> None:
    job = api.run_job(
        image=IMAGE,
        command=["python", "-c", "import sys; print('boom: bad dataset'); sys.exit(3)"],
        namespace=NS,
    )
    done = api.wait_for_job(job.id, namespace=NS, poll_interval=0.2, timeout=120)
    assert done.status.stage == JobStage.ERROR
    assert done.status.message == "Job failed with exit code: 3"


def test_a_scheduling_job_says_what_it_waits_for(hub: HubServer, api: HfApi) -> None:
    hub.jobs.start_delay_s = 60.0
    try:
        job = api.run_job(image=IMAGE, command=["true"], flavor="a10g-small", namespace=NS)
    finally:
        hub.jobs.start_delay_s = 0.0
    queued = api.inspect_job(job_id=job.id, namespace=NS)
    assert queued.status.stage == JobStage.SCHEDULING
    assert queued.status.message == "Waiting for a10g-small hardware to become available"
    api.cancel_job(job_id=job.id, namespace=NS)
    done = api.wait_for_job(job.id, namespace=NS, poll_interval=0.2, timeout=30)
    assert done.status.stage == JobStage.CANCELED


def test_cancel_kills_a_sleeping_job(api: HfApi) -> None:
    job = api.run_job(
        image=IMAGE, command=["python", "-c", "import time; print('sleeping'); time.sleep(600)"], namespace=NS
    )
    running = api.wait_for_job(job.id, namespace=NS, stages=[JobStage.RUNNING], poll_interval=0.1, timeout=60)
    assert running.status.stage == JobStage.RUNNING
    api.cancel_job(job_id=job.id, namespace=NS)
    done = api.wait_for_job(job.id, namespace=NS, poll_interval=0.2, timeout=60)
    assert done.status.stage == JobStage.CANCELED


def test_timeout_ends_the_job_in_error(api: HfApi) -> None:
    job = api.run_job(
        image=IMAGE, command=["python", "-c", "import time; time.sleep(600)"], timeout=1, namespace=NS
    )
    done = api.wait_for_job(job.id, namespace=NS, poll_interval=0.2, timeout=60)
    assert done.status.stage == JobStage.ERROR
    assert done.status.message == "Job timed out after 1s"


def test_a_job_without_a_timeout_gets_the_default_one(hub: HubServer, api: HfApi) -> None:
    hub.jobs.default_timeout_s = 1.0  # 30 minutes on the Hub
    try:
        job = api.run_job(image=IMAGE, command=["python", "-c", "import time; time.sleep(600)"], namespace=NS)
        done = api.wait_for_job(job.id, namespace=NS, poll_interval=0.2, timeout=60)
    finally:
        hub.jobs.default_timeout_s = 1800.0
    assert (done.status.stage, done.status.message) == (JobStage.ERROR, "Job timed out after 1s")


def test_list_jobs_filters_by_label_and_stage(api: HfApi) -> None:
    first = api.run_job(image=IMAGE, command=["python", "-c", "pass"], labels={"ftj": "alpha"}, namespace=NS)
    second = api.run_job(image=IMAGE, command=["python", "-c", "pass"], labels={"ftj": "beta"}, namespace=NS)
    api.wait_for_job([first.id, second.id], namespace=NS, poll_interval=0.2, timeout=120)
    alpha = list(api.list_jobs(labels={"ftj": "alpha"}, namespace=NS))
    assert [j.id for j in alpha] == [first.id]
    completed = {j.id for j in api.list_jobs(status="COMPLETED", labels={"ftj": "beta"}, namespace=NS)}
    assert completed == {second.id}
    assert list(api.list_jobs(status="RUNNING", labels={"ftj": "beta"}, namespace=NS)) == []


def test_list_jobs_spans_pages_with_link_headers(hub: HubServer, api: HfApi) -> None:
    ids = [
        api.run_job(image=IMAGE, command=["true"], labels={"ftj": "paged"}, namespace=NS).id for _ in range(3)
    ]
    hub.jobs.page_size = 1
    try:
        listed = [j.id for j in api.list_jobs(labels={"ftj": "paged"}, namespace=NS)]
    finally:
        hub.jobs.page_size = 50
    assert sorted(listed) == sorted(ids) and len(listed) == 3


def test_a_new_job_is_listed_only_after_the_listing_lag(hub: HubServer, api: HfApi) -> None:
    hub.jobs.listing_lag_s = 3600.0
    try:
        job = api.run_job(image=IMAGE, command=["true"], labels={"ftj": "lagging"}, namespace=NS)
        assert list(api.list_jobs(labels={"ftj": "lagging"}, namespace=NS)) == []
        assert api.inspect_job(job_id=job.id, namespace=NS).id == job.id  # known by id at once
    finally:
        hub.jobs.listing_lag_s = 0.0
    assert [j.id for j in api.list_jobs(labels={"ftj": "lagging"}, namespace=NS)] == [job.id]


def test_a_lost_response_still_does_the_work(hub: HubServer, api: HfApi) -> None:
    rule = hub.faults.lose_response(rf"^/api/jobs/{NS}$", status=502, method="POST")
    with pytest.raises(HfHubHTTPError) as info:
        api.run_job(image=IMAGE, command=["true"], labels={"ftj": "lost"}, namespace=NS)
    assert info.value.response.status_code == 502 and rule.hits == 1
    assert len(list(api.list_jobs(labels={"ftj": "lost"}, namespace=NS))) == 1


def test_list_jobs_survives_an_injected_429(hub: HubServer, api: HfApi) -> None:
    rule = hub.faults.rate_limit(rf"^/api/jobs/{NS}$", retry_after=0)
    list(api.list_jobs(namespace=NS))
    assert rule.hits == 1


def test_hardware_catalog_prices(api: HfApi) -> None:
    catalog = {h.name: h for h in api.list_jobs_hardware()}
    assert round(catalog["a10g-large"].unit_cost_usd * 60, 2) == 1.50
    assert round(catalog["h200x8"].unit_cost_usd * 60, 2) == 40.00
    assert catalog["l4x4"].accelerator is not None and catalog["l4x4"].accelerator.quantity == "4"
    assert catalog["cpu-basic"].accelerator is None


def test_unknown_flavor_is_rejected(api: HfApi) -> None:
    with pytest.raises(HfHubHTTPError) as info:
        api.run_job(image=IMAGE, command=["true"], flavor="tpu-v9", namespace=NS)
    assert info.value.response.status_code == 400


def test_follow_logs_recovers_from_a_dropped_stream(hub: HubServer, api: HfApi, tmp_path: Path) -> None:
    release = tmp_path / "release"
    script = (
        "import os, time\n"
        "for i in (1, 2, 3): print(i)\n"
        f"while not os.path.exists({str(release)!r}): time.sleep(0.05)\n"
        "print(4); print(5)\n"
    )
    drop = hub.faults.drop_log_stream(after_lines=2)
    job = api.run_job(image=IMAGE, command=["python", "-c", script], namespace=NS)
    seen = []
    for line in api.fetch_job_logs(job_id=job.id, namespace=NS, follow=True):
        seen.append(line)
        if line == "3":
            release.touch()
    assert seen == ["1", "2", "3", "4", "5"]
    assert drop.hits == 1


def test_a_lagging_log_stream_sends_its_first_byte_late(hub: HubServer, api: HfApi) -> None:
    job = api.run_job(image=IMAGE, command=["python", "-c", "print('a'); print('b')"], namespace=NS)
    api.wait_for_job(job.id, namespace=NS, poll_interval=0.2, timeout=60)
    lag = hub.faults.lag_log_stream(6.0, job_id=job.id, times=2)
    assert list(api.fetch_job_logs(job_id=job.id, namespace=NS)) == []  # the client waits 5 s, no more
    assert list(api.fetch_job_logs(job_id=job.id, namespace=NS, follow=True)) == ["a", "b"]
    assert lag.hits == 2
