"""`ftjob status|logs|watch NAME`: a FineTuneJob in the cluster, as a kubectl plugin would show it.

The cluster comes from `--kubeconfig`, else `KUBECONFIG`, else `~/.kube/config`, else the in-cluster service
account; the namespace from `-n`, else the kubeconfig context's namespace, else `default`.

Exit codes: 0 on success (`watch`: the job Succeeded); 1 when the job Failed or was Cancelled (`watch`),
or cannot be read (not found, no access, no cluster); 2 when `watch --timeout` ran out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from finetune_operator import GROUP, PLURAL, VERSION
from finetune_operator.api.status import TERMINAL_PHASES, FineTuneJobStatus, Phase
from finetune_operator.cli.status_view import (
    OUTPUTS,
    parse_status,
    render_output,
    summary_line,
    watch_line,
)

if TYPE_CHECKING:
    from finetune_operator.backends.base import Backend

SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class CliError(Exception):
    """A failure to report in one line (no traceback); exit code 1."""


@dataclass
class Cluster:
    """A connection to the cluster and the namespace to use."""

    api_client: Any
    namespace: str


def connect(
    kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> Cluster:
    """Load the Kubernetes configuration the way kubectl does.

    Parameters
    ----------
    kubeconfig
        A kubeconfig path (or `:`-separated list); default `KUBECONFIG`, then `~/.kube/config`.
    context
        The kubeconfig context to use; default its current context.
    namespace
        The namespace; default the context's namespace, else `default`.

    Raises
    ------
    CliError
        When no configuration can be loaded.
    """
    from kubernetes import client, config

    path = kubeconfig or os.environ.get("KUBECONFIG")
    if not path and Path("~/.kube/config").expanduser().exists():
        path = str(Path("~/.kube/config").expanduser())
    try:
        if path:
            contexts, active = config.list_kube_config_contexts(config_file=path)
            chosen = next((c for c in contexts if c["name"] == context), None) if context else active
            if chosen is None:
                raise CliError(f"context `{context}` is not in {path}")
            ns = namespace or (chosen.get("context") or {}).get("namespace") or "default"
            return Cluster(config.new_client_from_config(config_file=path, context=context), ns)
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            ns = namespace or (SA_NAMESPACE.read_text().strip() if SA_NAMESPACE.exists() else "default")
            return Cluster(client.ApiClient(), ns)
    except config.ConfigException as exc:
        raise CliError(f"cannot load the Kubernetes configuration: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot read the kubeconfig: {exc}") from None
    raise CliError("no Kubernetes configuration found: pass `--kubeconfig` or set `KUBECONFIG`")


def get_job(cluster: Cluster, name: str) -> dict[str, Any]:
    """The FineTuneJob resource as a dict.

    Raises
    ------
    CliError
        When it does not exist, may not be read, or the API cannot be reached.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api = client.CustomObjectsApi(cluster.api_client)
    try:
        obj: Any = api.get_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            raise CliError(f"FineTuneJob `{name}` not found in namespace `{cluster.namespace}`") from None
        if exc.status in (401, 403):
            raise CliError(
                f"not allowed to read FineTuneJob `{name}` in namespace `{cluster.namespace}` "
                f"(HTTP {exc.status})"
            ) from None
        raise CliError(f"reading FineTuneJob `{name}`: HTTP {exc.status} {exc.reason}") from None
    except HTTPError as exc:
        raise CliError(f"cannot reach the Kubernetes API: {exc}") from None
    if not isinstance(obj, dict):
        raise CliError(f"FineTuneJob `{name}`: unexpected answer from the API")
    return obj


# Logs: read by the backend that runs the job, with its own `logs()` (the operator's monitoring reads the same).


def read_logs(
    obj: dict[str, Any], backend_for: Callable[[str], Backend | None], follow: bool
) -> Iterator[str]:
    """The training log lines of the FineTuneJob `obj`, from the backend `backend_for(kind)` builds for its work.

    A backend whose calls need the user's token (HF Jobs) is given `HF_TOKEN` from the environment.

    Raises
    ------
    CliError
        When the job has no work yet, no backend writes its kind, the token is missing, the backend refuses,
        or no line could be read.
    """
    from finetune_operator.backends.base import JobTarget
    from finetune_operator.errors import RetryLater, SpecError

    status = parse_status(obj)
    meta = obj.get("metadata") or {}
    ref = status.backend_ref
    if ref is None:
        raise CliError(
            f"FineTuneJob `{meta.get('name')}` has no backend work yet (phase {status.phase.value})"
        )
    backend = backend_for(ref.kind)
    if backend is None:
        raise CliError(f"unknown backend kind `{ref.kind}` in `status.backendRef`")
    token = os.environ.get("HF_TOKEN") if backend.needs_token else None
    if backend.needs_token and not token:
        raise CliError(f"set `HF_TOKEN` to read the logs of {ref.kind} `{ref.id}`")
    target = JobTarget(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        attempt=ref.attempt or max(status.attempts, 1),
        token=token,
    )
    read = 0
    try:
        for line in backend.logs(target, ref, follow=follow):
            read += 1
            yield line
    except (SpecError, RetryLater) as exc:
        raise CliError(f"reading logs of {ref.kind} `{ref.id}`: {exc.message}") from None
    if not read:
        where = f" (its log: {ref.url})" if ref.url else ""
        raise CliError(f"{ref.kind} `{ref.id}` has no log lines (yet, or any more){where}")


def job_logs(cluster: Cluster, name: str, follow: bool) -> Iterator[str]:
    """The training logs of a FineTuneJob, from whichever backend runs it (see :func:`read_logs`)."""
    from pydantic import ValidationError

    from finetune_operator.backends.registry import for_kind
    from finetune_operator.config import OperatorConfig

    try:
        cfg = OperatorConfig.load()  # `ftjob`'s own: FTJOB_CONFIG and FTJOB_* variables, if any
    except (ValidationError, OSError, ValueError) as exc:
        raise CliError(f"the operator configuration (FTJOB_CONFIG, FTJOB_*) cannot be read: {exc}") from None
    return read_logs(get_job(cluster, name), lambda kind: for_kind(kind, cfg, cluster.api_client), follow)


# Commands.


def _cluster(args: argparse.Namespace) -> Cluster:
    return connect(args.kubeconfig, args.context, args.namespace)


def run_status(args: argparse.Namespace) -> int:
    """`ftjob status`: print the job."""
    obj = get_job(_cluster(args), args.name)
    sys.stdout.write(render_output(obj, args.output))
    return 0


def run_logs(args: argparse.Namespace) -> int:
    """`ftjob logs`: print the training logs (follow with `-f`)."""
    for line in job_logs(_cluster(args), args.name, args.follow):
        print(line, flush=args.follow)
    return 0


def exit_code(phase: Phase) -> int:
    """What `watch` returns for a terminal phase: 0 Succeeded, 1 Failed or Cancelled."""
    return 0 if phase == Phase.SUCCEEDED else 1


def watch(
    read: Callable[[], FineTuneJobStatus],
    out: TextIO,
    *,
    tty: bool,
    interval: float = 2.0,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Show a job's progress until it ends.

    Parameters
    ----------
    read
        Returns the job's current status.
    out
        Where to write.
    tty
        Redraw one line with a progress bar; otherwise print a plain line whenever it changes.
    interval
        Seconds between reads.
    timeout
        Give up after this many seconds (exit code 2); None waits for ever.
    sleep, clock
        Injected for tests.

    Returns
    -------
    int
        0 when the job Succeeded, 1 when it Failed or was Cancelled, 2 on timeout.
    """
    start = clock()
    last = ""
    while True:
        status = read()
        line = watch_line(status, bar_width=24 if tty else 0)
        if tty:
            out.write("\r\x1b[2K" + line)
            out.flush()
        elif line != last:
            out.write(line + "\n")
            out.flush()
        last = line
        if status.phase in TERMINAL_PHASES:
            if tty:
                out.write("\n")
            # The line an agent relays: outcome, training time, the metric that matters, cost.
            out.write(summary_line(status) + "\n")
            out.flush()
            return exit_code(status.phase)
        if timeout is not None and clock() - start >= timeout:
            if tty:
                out.write("\n")
            out.write(f"timed out after {timeout:g}s; the job is still {status.phase.value}\n")
            out.flush()
            return 2
        sleep(interval)


def run_watch(args: argparse.Namespace) -> int:
    """`ftjob watch`: a live progress line until the job ends."""
    cluster = _cluster(args)
    return watch(
        lambda: parse_status(get_job(cluster, args.name)),
        sys.stdout,
        tty=sys.stdout.isatty(),
        interval=args.interval,
        timeout=args.timeout,
    )


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except CliError as exc:
            sys.stdout.flush()
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except BrokenPipeError:  # `ftjob logs NAME | head`
            return 0

    return run


HELP = {
    "status": "show a FineTuneJob: phase, conditions, dataset verdicts, plan, progress, outputs",
    "logs": "print the training logs of a FineTuneJob, from whichever backend runs it",
    "watch": "follow a FineTuneJob's progress until it ends (exit 0 Succeeded, 1 Failed or Cancelled)",
}


def register(subparsers: Any, name: str) -> None:
    """Add the `status`, `logs` or `watch` subcommand (whichever `name` is)."""
    if name not in HELP:
        raise ValueError(f"unknown cluster subcommand {name!r}")
    p = subparsers.add_parser(name, help=HELP[name], description=HELP[name] + ".")
    p.add_argument("name", metavar="NAME", help="the FineTuneJob's name")
    p.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's, else `default`)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    p.add_argument("--context", help="kubeconfig context (default: the current context)")
    if name == "status":
        p.add_argument(
            "-o",
            "--output",
            choices=OUTPUTS,
            default="text",
            help="output format (summary: one line to relay)",
        )
        p.set_defaults(func=_guarded(run_status))
    elif name == "logs":
        p.add_argument(
            "-f", "--follow", action="store_true", help="keep printing new lines until the run ends"
        )
        p.set_defaults(func=_guarded(run_logs))
    else:
        p.add_argument("--interval", type=float, default=2.0, help="seconds between reads (default 2)")
        p.add_argument("--timeout", type=float, help="give up after this many seconds (exit code 2)")
        p.set_defaults(func=_guarded(run_watch))
