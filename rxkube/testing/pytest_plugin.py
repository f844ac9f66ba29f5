"""pytest fixtures for testing Kubernetes code against :class:`rxkube.testing.ApiServer`.

Installed with rxkube (a ``pytest11`` entry point), so any test can ask for:

- ``apiserver``: a running server for one test. Configure it with the marker
  ``@pytest.mark.rxkube_apiserver(token="t", tls=True, bookmark_interval=None, ...)``,
  which takes :class:`~rxkube.testing.ApiServer`'s keyword arguments.
- ``kubeconfig``: the path of a kubeconfig for ``apiserver``, written in ``tmp_path``.
- ``apiserver_factory``: a function starting more servers with any options; all are
  stopped when the test ends.
- ``envtest_apiserver``: an :class:`~rxkube.testing.EnvtestServer` (a real kube-apiserver
  and etcd found through ``KUBEBUILDER_ASSETS``) for one test; the test is skipped when
  the binaries are not there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ._envtest import EnvtestBinaryNotFound, EnvtestServer
from ._server import ApiServer

MARKER = "rxkube_apiserver"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``rxkube_apiserver`` marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): keyword arguments for the rxkube `apiserver` fixture's ApiServer",
    )


@pytest.fixture
def apiserver_factory() -> Iterator[Callable[..., ApiServer]]:
    """A function ``(**options) -> ApiServer`` returning started servers, stopped at teardown."""
    started: list[ApiServer] = []

    def start(**options: Any) -> ApiServer:
        server = ApiServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def apiserver(
    request: pytest.FixtureRequest, apiserver_factory: Callable[..., ApiServer]
) -> ApiServer:
    """A running :class:`~rxkube.testing.ApiServer` for this test (see the module doc)."""
    marker = request.node.get_closest_marker(MARKER)
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    return apiserver_factory(**options)


@pytest.fixture
def kubeconfig(apiserver: ApiServer, tmp_path: Path) -> Path:
    """A kubeconfig file for the ``apiserver`` fixture (context ``rxkube-test``)."""
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def envtest_apiserver() -> Iterator[EnvtestServer]:
    """A running :class:`~rxkube.testing.EnvtestServer`, or a skip naming what is missing."""
    try:
        server = EnvtestServer()
    except EnvtestBinaryNotFound as missing:
        pytest.skip(str(missing))
    with server:
        yield server
