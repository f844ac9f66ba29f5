"""A real ``kube-apiserver`` and ``etcd`` behind :class:`ApiServer`'s face, as envtest runs them.

controller-runtime's ``pkg/envtest`` starts the two binaries found through
``KUBEBUILDER_ASSETS`` (``pkg/internal/testing/process/bin_path_finder.go``: a
``TEST_ASSET_<NAME>`` variable first, then ``$KUBEBUILDER_ASSETS/<name>``, then
``/usr/local/kubebuilder/bin``) with the flags of
``pkg/internal/testing/controlplane/{etcd,apiserver}.go``: etcd on free local ports with
a throw-away data directory; kube-apiserver on a secure port with generated serving
certificates, a service-account signing key, RBAC, and the ServiceAccount admission
plugin off (no controller creates the default service account). envtest authenticates
its admin with a client certificate in ``system:masters``; this one gives that group a
bearer token instead (``--token-auth-file``), so a kubeconfig and :meth:`client` work as
with ``ApiServer(token=..., tls=True)``.

:class:`EnvtestServer` has the parts of :class:`~rxkube.testing.ApiServer` a test can
use against a real server: ``url``, ``token``, ``ca_file``, :meth:`client`,
:meth:`kubeconfig`, :meth:`write_kubeconfig`, :meth:`start`/:meth:`stop`,
:meth:`astart`/:meth:`astop`, ``with`` and ``async with``,
:attr:`resource_version` and :meth:`compact` (etcd's compaction; kube-apiserver's watch
cache may still serve a window of older history, as on any cluster).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import orjson

from ._kubeconfig import kubeconfig_document, write_private
from ._lifecycle import ServerLifecycle
from ._tls import generate_certificates, generate_signing_key

if TYPE_CHECKING:
    from ..client import Client

ASSETS_VARIABLE = "KUBEBUILDER_ASSETS"
"""Where controller-runtime's envtest looks for ``kube-apiserver`` and ``etcd``."""

DEFAULT_ASSETS_PATH = Path("/usr/local/kubebuilder/bin")
"""envtest's last resort when neither variable is set."""

ADMIN_GROUP = "system:masters"
"""The group the admin token's user is in (RBAC lets it do anything)."""


class EnvtestBinaryNotFound(FileNotFoundError):
    """``kube-apiserver`` or ``etcd`` is not where envtest's rules say to look.

    Attributes:
        name: the binary (``kube-apiserver``, ``etcd``).
        path: where it was looked for.
    """

    def __init__(self, name: str, path: Path, source: str) -> None:
        super().__init__(
            f"{name} not found at {path} ({source}): set {ASSETS_VARIABLE} to a directory "
            f"holding kube-apiserver and etcd (for example `setup-envtest use -p path`), or "
            f"{_override_variable(name)} to the binary itself"
        )
        self.name = name
        self.path = path


def _override_variable(name: str) -> str:
    """envtest's per-binary override: ``TEST_ASSET_KUBE_APISERVER``, ``TEST_ASSET_ETCD``."""
    sanitized = "".join(c if c.isalnum() else "_" for c in name.upper())
    while "__" in sanitized:
        sanitized = sanitized.replace("__", "_")
    return "TEST_ASSET_" + sanitized.lstrip("0123456789")


def find_binary(
    name: str, assets: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """Where envtest would run ``name`` from; it must be an executable file.

    Args:
        name: ``kube-apiserver`` or ``etcd``.
        assets: a directory to use when neither environment variable is set (envtest's
            ``BinaryAssetsDirectory``).
        env: the environment to read (``os.environ`` by default).

    Raises:
        EnvtestBinaryNotFound: no executable there.
    """
    env = os.environ if env is None else env
    override = _override_variable(name)
    if override in env:
        path, source = Path(env[override]), f"${override}"
    elif ASSETS_VARIABLE in env:
        path, source = Path(env[ASSETS_VARIABLE]) / name, f"${ASSETS_VARIABLE}"
    elif assets is not None:
        path, source = Path(assets) / name, "the assets directory given"
    else:
        path, source = DEFAULT_ASSETS_PATH / name, f"{ASSETS_VARIABLE} is not set"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise EnvtestBinaryNotFound(name, path, source)
    return path


def binaries_available(assets: str | os.PathLike[str] | None = None) -> bool:
    """Whether both binaries can be found (for ``pytest.mark.skipif``)."""
    try:
        find_binary("etcd", assets)
        find_binary("kube-apiserver", assets)
    except EnvtestBinaryNotFound:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Ports:
    """The local ports of one control plane."""

    etcd_client: int
    etcd_peer: int
    apiserver: int


def etcd_args(data_dir: Path, ports: Ports, *, host: str = "127.0.0.1") -> list[str]:
    """etcd's flags as envtest sets them (``controlplane/etcd.go``, ``defaultArgs``)."""
    client = f"http://{host}:{ports.etcd_client}"
    return [
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls=http://{host}:{ports.etcd_peer}",
        "--unsafe-no-fsync=true",
    ]


def apiserver_args(
    cert_dir: Path, ports: Ports, *, host: str = "127.0.0.1", extra: Mapping[str, str] | None = None
) -> list[str]:
    """kube-apiserver's flags as envtest sets them (``controlplane/apiserver.go``,
    ``defaultArgs``), with ``--token-auth-file`` for the admin token; ``extra`` adds or
    replaces flags (``{"feature-gates": "..."}``)."""
    args = {
        "advertise-address": host,
        "etcd-servers": f"http://{host}:{ports.etcd_client}",
        "cert-dir": str(cert_dir),
        "tls-cert-file": str(cert_dir / "apiserver.crt"),
        "tls-private-key-file": str(cert_dir / "apiserver.key"),
        "secure-port": str(ports.apiserver),
        "bind-address": host,
        "service-cluster-ip-range": "10.0.0.0/24",
        "allow-privileged": "true",
        "disable-admission-plugins": "ServiceAccount",
        "authorization-mode": "RBAC",
        "token-auth-file": str(cert_dir / "tokens.csv"),
        "service-account-issuer": f"https://{host}:{ports.apiserver}/",
        "service-account-key-file": str(cert_dir / "sa-signer.pub"),
        "service-account-signing-key-file": str(cert_dir / "sa-signer.key"),
    }
    args.update(extra or {})
    return [f"--{name}={value}" for name, value in args.items()]


def _free_port(host: str) -> int:
    # As envtest's addr.Suggest: a port the kernel just handed out, free again once closed.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EnvtestServer(ServerLifecycle):
    """A real kube-apiserver and etcd for one test, with :class:`ApiServer`'s face.

    Args:
        assets: the directory of ``kube-apiserver`` and ``etcd`` when neither
            ``TEST_ASSET_*`` nor ``KUBEBUILDER_ASSETS`` is set.
        apiserver_flags: kube-apiserver flags to add or replace (without ``--``).
        start_timeout: how long the two may take to become ready.

    Raises:
        EnvtestBinaryNotFound: on construction, when a binary is missing.
    """

    def __init__(
        self,
        *,
        assets: str | os.PathLike[str] | None = None,
        apiserver_flags: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.etcd_path = find_binary("etcd", assets)
        self.apiserver_path = find_binary("kube-apiserver", assets)
        self.apiserver_flags = dict(apiserver_flags or {})
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.token = secrets.token_urlsafe(24)
        """The admin's bearer token (user ``rxkube-admin`` in ``system:masters``)."""
        self.url = ""
        """``https://127.0.0.1:<port>``; set once started."""
        self.ca_file: str | None = None
        """The CA certificate (PEM) that signed the serving certificate."""
        self.etcd_url = ""
        self._dir: Path | None = None
        self._processes: list[subprocess.Popen[bytes]] = []
        self._clients: list[Client] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float | None = None) -> Self:
        """Start etcd, then kube-apiserver, and wait until it is ready.

        Args:
            timeout: how long the two may take (``start_timeout`` by default).

        Raises:
            RuntimeError: a process exited or did not become ready in time (its output
                is in the message).
        """
        with self._lock:
            if self._processes:
                raise RuntimeError("the envtest control plane is already running")
            work = self._dir = Path(tempfile.mkdtemp(prefix="rxkube-envtest-"))
        try:
            self._start(work, self.start_timeout if timeout is None else timeout)
        except BaseException:
            self.stop()
            raise
        return self

    async def astart(self) -> Self:
        """:meth:`start` from a coroutine, without blocking its loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """:meth:`stop` from a coroutine, without blocking its loop."""
        await asyncio.to_thread(self.stop)

    def _start(self, work: Path, timeout: float) -> None:
        certs = generate_certificates()
        cert_dir = work / "certs"
        cert_dir.mkdir()
        (cert_dir / "apiserver.crt").write_bytes(certs.cert_pem)
        (cert_dir / "apiserver.key").write_bytes(certs.key_pem)
        (cert_dir / "ca.crt").write_bytes(certs.ca_pem)
        # A fresh EC key signs service-account tokens (kube-apiserver takes ES256 keys);
        # its public half verifies them, in a file of its own as envtest writes it.
        private, public = generate_signing_key()
        (cert_dir / "sa-signer.key").write_bytes(private)
        (cert_dir / "sa-signer.pub").write_bytes(public)
        (cert_dir / "tokens.csv").write_text(
            f'{self.token},rxkube-admin,rxkube-admin,"{ADMIN_GROUP}"\n'
        )
        self.ca_file = str(cert_dir / "ca.crt")
        ports = Ports(_free_port(self.host), _free_port(self.host), _free_port(self.host))
        self.etcd_url = f"http://{self.host}:{ports.etcd_client}"
        deadline = time.monotonic() + timeout
        etcd = self._spawn(self.etcd_path, etcd_args(work / "etcd", ports), work / "etcd.log")
        self._wait_ready(etcd, f"{self.etcd_url}/health", work / "etcd.log", deadline, timeout)
        args = apiserver_args(cert_dir, ports, extra=self.apiserver_flags)
        apiserver = self._spawn(self.apiserver_path, args, work / "kube-apiserver.log")
        self.url = f"https://{self.host}:{ports.apiserver}"
        log = work / "kube-apiserver.log"
        self._wait_ready(apiserver, f"{self.url}/readyz", log, deadline, timeout)

    def _spawn(self, path: Path, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(path), *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._processes.append(process)
        return process

    def _wait_ready(
        self,
        process: subprocess.Popen[bytes],
        url: str,
        log: Path,
        deadline: float,
        timeout: float,
    ) -> None:
        name = log.stem
        context = (
            ssl.create_default_context(cafile=self.ca_file) if url.startswith("https") else None
        )
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}:\n"
                    + log.read_text(errors="replace")[-4000:]
                )
            try:
                with urllib.request.urlopen(request, timeout=2, context=context) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{url} not ready after {timeout} s:\n"
                    + log.read_text(errors="replace")[-4000:]
                )
            # Readiness has no event to wait on: poll it, as envtest's health check does.
            threading.Event().wait(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop kube-apiserver, then etcd (SIGTERM, then SIGKILL after ``timeout``), and
        remove their data; close the clients :meth:`client` gave."""
        with self._lock:
            clients, self._clients = self._clients, []
            processes, self._processes = self._processes, []
            work, self._dir = self._dir, None
        for client in clients:
            client.close()
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        self.url = ""

    # ------------------------------------------------------------------ history

    @property
    def resource_version(self) -> int:
        """etcd's current revision: the latest resourceVersion."""
        answer = self._etcd("/v3/kv/range", {"key": base64.b64encode(b"\0").decode()})
        return int(answer["header"]["revision"])

    def compact(self) -> int:
        """Compact etcd's history at its current revision, and return it.

        Compacting again with nothing written since is a no-op, as on the test server
        (etcd itself refuses it: "required revision has been compacted").
        """
        revision = self.resource_version
        try:
            self._etcd("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        except urllib.error.HTTPError as error:
            if b"required revision has been compacted" not in error.read():
                raise
        return revision

    def _etcd(self, path: str, body: dict[str, Any]) -> Any:
        if not self.etcd_url:
            raise RuntimeError("the envtest control plane is not running")
        request = urllib.request.Request(
            self.etcd_url + path, data=orjson.dumps(body), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as answer:
            return orjson.loads(answer.read())

    # -------------------------------------------------------------------- clients

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig (as a dict) for this control plane: its URL, CA and admin token."""
        if not self.url or self.ca_file is None:
            raise RuntimeError("the envtest control plane is not running")
        return kubeconfig_document(
            "envtest",
            self.url,
            ca_pem=Path(self.ca_file).read_bytes(),
            token=self.token,
            namespace=namespace,
        )

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "default") -> Path:
        """Write :meth:`kubeconfig` to ``path`` (mode 0600: it holds the token)."""
        return write_private(path, self.kubeconfig(namespace))

    def client(self) -> Client:
        """A ready :class:`rxkube.client.Client` with the admin token; closed on :meth:`stop`."""
        from ..client import Client

        if not self.url:
            raise RuntimeError("the envtest control plane is not running")
        client = Client(self.url, token=self.token, ca_file=self.ca_file, verify_ssl=True)
        with self._lock:
            self._clients.append(client)
        return client
