"""Local stand-in for the Hugging Face Hub and Jobs HTTP APIs, for the real ``huggingface_hub`` client.

    from tests.hub import start_hub, client_config
    with start_hub() as hub, client_config(hub):
        HfApi().create_repo("tester/m")   # goes to hub.url

See ``tests/hub/README.md`` for the API, the environment variables and the limits.
"""

from tests.hub.auth import DEFAULT_ORG, DEFAULT_TOKEN, DEFAULT_USER
from tests.hub.client import client_config, client_env
from tests.hub.server import HubServer, start_hub

__all__ = [
    "DEFAULT_ORG",
    "DEFAULT_TOKEN",
    "DEFAULT_USER",
    "HubServer",
    "client_config",
    "client_env",
    "start_hub",
]
