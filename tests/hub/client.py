"""Point the real ``huggingface_hub`` client at a stand-in, in this process or in child processes.

``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_HUB_DISABLE_XET`` once, at import. A
test process has usually imported it already (with the suite's ``HF_HUB_OFFLINE=1``), so
:func:`client_config` also sets the module constants it read, and the default ``HfApi`` behind the
module-level functions (``list_jobs`` calls ``whoami`` through it). Nothing of the client is replaced:
it is configured.
Child processes only need :func:`client_env`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tests.hub.auth import DEFAULT_TOKEN

if TYPE_CHECKING:
    from tests.hub.server import HubServer

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def client_env(
    hub: HubServer, token: str | None = DEFAULT_TOKEN, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment for a child process that should talk to ``hub``.

    Parameters
    ----------
    hub : HubServer
        The running stand-in.
    token : str, optional
        Value for ``HF_TOKEN``; ``None`` leaves it unset (anonymous).
    base : dict[str, str], optional
        Environment to start from; ``os.environ`` when omitted.

    Returns
    -------
    dict[str, str]
        ``base`` without the offline switches and tokens, plus ``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET=1``,
        ``HF_HUB_DISABLE_TELEMETRY=1`` and ``HF_TOKEN``.
    """
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if k not in (*OFFLINE_VARS, "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
    }
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1")
    if token is not None:
        env["HF_TOKEN"] = token
    return env


@contextmanager
def client_config(hub: HubServer, token: str | None = DEFAULT_TOKEN) -> Iterator[None]:
    """Within the block, the already-imported ``huggingface_hub`` talks to ``hub`` with ``token``.

    Parameters
    ----------
    hub : HubServer
        The running stand-in.
    token : str, optional
        Exported as ``HF_TOKEN`` (read by the client on each call); ``None`` for anonymous calls.
    """
    from huggingface_hub import constants, hf_api

    saved_env = dict(os.environ)
    saved_constants: dict[str, Any] = {
        name: getattr(constants, name)
        for name in ("ENDPOINT", "HUGGINGFACE_CO_URL_TEMPLATE", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET")
    }
    saved_api_endpoint = hf_api.api.endpoint
    os.environ.clear()
    os.environ.update(client_env(hub, token, base=saved_env))
    constants.ENDPOINT = hub.url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    constants.HF_HUB_OFFLINE = False
    constants.HF_HUB_DISABLE_XET = True
    hf_api.api.endpoint = hub.url
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        for name, value in saved_constants.items():
            setattr(constants, name, value)
        hf_api.api.endpoint = saved_api_endpoint
