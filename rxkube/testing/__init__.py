"""``rxkube.testing``: a Kubernetes API server for tests, in your own process.

:class:`ApiServer` speaks the list/watch protocol the way kube-apiserver v1.32 does
(resourceVersions, pagination, bookmarks, streaming lists, 410 after compaction,
selectors, metadata-only responses, server-side apply), with a synchronous object API
for tests, a log of the requests it answered (:class:`RecordedRequest`), and
:class:`Faults` to break things on purpose. Installing rxkube also installs the pytest
fixtures ``apiserver``, ``apiserver_factory``, ``kubeconfig`` and ``envtest_apiserver``
(:class:`EnvtestServer`: a real kube-apiserver and etcd with the same face, skipped
where ``KUBEBUILDER_ASSETS`` finds none); see ``docs/testing.md``.
"""

from __future__ import annotations

from ._envtest import EnvtestBinaryNotFound, EnvtestServer
from ._faults import Faults
from ._requests import RecordedRequest
from ._server import DEFAULT_NAMESPACES, ApiServer, ResourceLike

__all__ = [
    "DEFAULT_NAMESPACES",
    "ApiServer",
    "EnvtestBinaryNotFound",
    "EnvtestServer",
    "Faults",
    "RecordedRequest",
    "ResourceLike",
]
