"""Operator start-up: where the Kubernetes client comes from, and retries that must not trip over themselves."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import kopf
import pytest
import yaml

from finetune_operator.handlers.startup import api_client, cleanup, login, startup


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig with one cluster and a token user (nothing connects to it here)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


@pytest.fixture
def outside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)


def test_api_client_reads_kubeconfig_set_after_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_a_pod: None
) -> None:
    # The kubernetes package is imported already; its default path was frozen then.
    import kubernetes.config.kube_config as kube_config

    path = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443")
    assert str(path) != kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    monkeypatch.setenv("KUBECONFIG", str(path))
    api = api_client()
    try:
        assert api.configuration.host == "https://127.0.0.1:6443"
    finally:
        api.close()


def test_the_connection_pool_fits_the_handler_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_a_pod: None
) -> None:
    """urllib3's default pool (10) under kopf's 16 handler threads discards connections under load."""
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443")))
    api = api_client(16)
    try:
        assert api.configuration.connection_pool_maxsize >= 16
    finally:
        api.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_startup_retried_after_a_failure_binds_the_metrics_port_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_a_pod: None
) -> None:
    """kopf retries a failed start-up activity in the same process: the retry must succeed."""
    port = free_port()
    monkeypatch.setenv("FTJOB_METRICS_PORT", str(port))
    monkeypatch.setenv("FTJOB_ENABLED_BACKENDS", '["Local"]')
    monkeypatch.setenv("FTJOB_LOCAL_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    memo = kopf.Memo()
    logger = logging.getLogger("test-startup")
    try:
        with pytest.raises(Exception, match=r"kube-config|kubeconfig|No such file"):
            startup(settings=kopf.OperatorSettings(), memo=memo, logger=logger)
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:6443")))
        # Set after the handlers were imported (as the e2e tests do): the operator that starts uses it.
        monkeypatch.setenv("FTJOB_POLL_INTERVAL_SECONDS", "2")
        startup(settings=kopf.OperatorSettings(), memo=memo, logger=logger)
        assert memo.jobs.poll_seconds == 2
        settings = kopf.OperatorSettings()
        startup(settings=settings, memo=memo, logger=logger)  # and once more
        # One work queue runs the passes: the earlier start-ups' workers are stopped, not left running.
        workers = [t for t in threading.enumerate() if t.name.startswith("ftjob-pass-")]
        assert len(workers) == memo.deps.config.workers
        memo.jobs.queue.add("some-uid", 60)
        assert memo.metrics.registry.get_sample_value("finetune_operator_queue_depth") == 1
        assert memo.metrics_server[0].server_port == port
        assert set(memo.deps.backends) == {"Local"}
    finally:
        cleanup(memo=memo)
    with socket.socket() as s:  # cleanup freed the port for a restarted operator
        s.bind(("127.0.0.1", port))


def test_without_any_credentials_startup_stops_saying_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_a_pod: None
) -> None:
    """No retry can conjure credentials: the process exits (the pod restarts) with a message, instead of
    kopf retrying the start-up with a traceback every minute."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("FTJOB_METRICS_PORT", "0")
    with pytest.raises(kopf.PermanentError, match=r"no Kubernetes credentials.*set KUBECONFIG"):
        startup(settings=kopf.OperatorSettings(), memo=kopf.Memo(), logger=logging.getLogger("t"))


def test_kopf_login_uses_the_kubeconfig_set_after_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_a_pod: None
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:7443")))
    info = login(settings=kopf.OperatorSettings())
    assert info.server == "https://127.0.0.1:7443"
    assert (info.scheme, info.token) == ("Bearer", "not-a-secret")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(kopf.LoginError, match="no Kubernetes credentials"):
        login(settings=kopf.OperatorSettings())


def test_kopf_login_in_a_pod_uses_the_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the chart's Deployment gets: the service account's token and CA, refreshed by the client."""
    from kubernetes.config import incluster_config

    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("sa-token-abc")
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot-checked-here\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    info = login(settings=kopf.OperatorSettings())
    assert info.server == "https://10.96.0.1:443" and info.ca_path == str(ca)
    scheme, _, token_value = info.as_http_headers()["Authorization"].partition(" ")
    assert scheme.lower() == "bearer" and token_value == "sa-token-abc"  # schemes are case-insensitive


def test_startup_counts_jobs_from_kopfs_index_and_meters_the_backends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_a_pod: None
) -> None:
    """kopf hands its indexes to start-up (empty, filled before any handler runs): the jobs gauge reads
    the FineTuneJob index at each scrape, so it is right after a restart; backend calls are counted."""
    monkeypatch.setenv("FTJOB_METRICS_PORT", "0")
    monkeypatch.setenv("FTJOB_ENABLED_BACKENDS", '["Local"]')
    monkeypatch.setenv("FTJOB_LOCAL_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:6443")))
    memo = kopf.Memo()
    index: dict[str, list[None]] = {}
    try:
        startup(settings=kopf.OperatorSettings(), memo=memo, logger=logging.getLogger("t"), ftj_phases=index)
        index["Succeeded"] = [None, None]
        assert 'finetune_operator_jobs{phase="Succeeded"} 2.0' in memo.metrics.render()
        assert type(memo.deps.backends["Local"]).__name__ == "MeteredBackend"
    finally:
        cleanup(memo=memo)


def test_only_what_reconcile_says_becomes_an_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_a_pod: None, caplog: pytest.LogCaptureFixture
) -> None:
    """kopf's routine INFO lines ("Handler 'on_event' succeeded.") are not posted as Events, and each Event
    reconcile decides is posted once (logged to the operator's log, not posted again)."""
    monkeypatch.setenv("FTJOB_METRICS_PORT", "0")
    monkeypatch.setenv("FTJOB_ENABLED_BACKENDS", '["Local"]')
    monkeypatch.setenv("FTJOB_LOCAL_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:6443")))
    memo, settings = kopf.Memo(), kopf.OperatorSettings()
    try:
        startup(settings=settings, memo=memo, logger=logging.getLogger("t"))
    finally:
        cleanup(memo=memo)
    assert settings.posting.level >= logging.WARNING
    from finetune_operator.handlers import jobs
    from finetune_operator.lifecycle.reconcile import EventRecord

    posted: list[tuple[str, str]] = []
    watched = jobs.WatchedJobs(
        memo.deps, workers=1, post=lambda body, type_, reason, message: posted.append((type_, reason))
    )
    body = kopf.Body({"metadata": {"namespace": "ns", "name": "demo", "uid": "u"}})
    with caplog.at_level(logging.INFO, logger=jobs.__name__):
        watched.say(
            body, [EventRecord("Normal", "DatasetValidated", "ok"), EventRecord("Warning", "Blocked", "x")]
        )
    assert posted == [("Normal", "DatasetValidated"), ("Warning", "Blocked")]
    assert "[ns/demo] Blocked: x" in caplog.text
