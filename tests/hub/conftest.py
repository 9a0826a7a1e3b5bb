"""Fixtures: a stand-in per test module, and the real client configured to use it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hub.auth import DEFAULT_TOKEN
from tests.hub.client import client_config
from tests.hub.server import HubServer, start_hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A running stand-in whose store lives in a per-module temporary directory; the client points at it."""
    server = start_hub(tmp_path_factory.mktemp("hub-data"))
    try:
        with client_config(server, token=DEFAULT_TOKEN):
            yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _clear_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults never leak from one test into the next."""
    yield
    if "hub" in request.fixturenames:
        request.getfixturevalue("hub").faults.clear()
