"""Connection settings from the ``kubernetes`` package's loaders: kubeconfig, in-cluster, Configuration.

``Client.from_kubeconfig``, ``Client.in_cluster`` and ``Client.from_configuration`` are
built on these: a kubeconfig file or the mounted service account becomes a
``kubernetes.client.Configuration``, and a Configuration becomes ``Client`` keyword
arguments (the generated API classes are never used). Errors are ``ConfigError``.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ConfigError

if TYPE_CHECKING:
    import kubernetes.client

_SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def client_settings(configuration: kubernetes.client.Configuration) -> dict[str, Any]:
    """The ``Client`` keyword arguments for a Configuration (see ``Client.from_configuration``)."""
    cfg = configuration
    host = str(cfg.host)
    proxy = getattr(cfg, "proxy", None)
    # A proxy from the environment follows Go's rules, loopback included; one the
    # kubeconfig (proxy-url) or the caller named is used for loopback too.
    from_environment = bool(getattr(cfg, "_proxy_from_env", True))
    no_proxy = getattr(cfg, "no_proxy", None) or ""
    if proxy and _bypasses_proxy(host, no_proxy, loopback=from_environment):
        proxy = None
    auth: Callable[[], dict[str, str]] | None = None
    if cfg.api_key or cfg.refresh_api_key_hook is not None:

        def auth() -> dict[str, str]:
            value = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
            if not value:
                return {}
            # The in-cluster loader writes "bearer ..."; send the canonical spelling,
            # which strict proxies and servers require.
            scheme, _, credentials = str(value).partition(" ")
            if credentials and scheme.lower() == "bearer":
                value = f"Bearer {credentials}"
            return {"Authorization": value}

    return dict(
        server=host,
        ca_file=cfg.ssl_ca_cert or None,
        ca_data=getattr(cfg, "ca_cert_data", None) or None,
        verify_ssl=bool(cfg.verify_ssl),
        client_cert_file=cfg.cert_file or None,
        client_key_file=cfg.key_file or None,
        tls_server_name=getattr(cfg, "tls_server_name", None) or None,
        proxy=proxy or None,
        proxy_headers=cfg.proxy_headers or None,
        auth=auth,
    )


def kubeconfig_files(path: str | None = None) -> tuple[str, list[str]]:
    """The kubeconfig path as given (``path``, else ``$KUBECONFIG``, else ``~/.kube/config``)
    and the files of it that exist."""
    given = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
    files = [os.path.expanduser(p) for p in given.split(os.pathsep) if p]
    return given, [f for f in files if os.path.isfile(f)]


EXEC_TIMEOUT = 30.0
"""Seconds a credential plugin may take to answer. kubectl waits for ever; a library cannot,
since a plugin waiting on a browser login or a keyring would hold up the request that
refreshes the token, and every request waiting for it."""


def load_kubeconfig(
    path: str | None, context: str | None, plugins: ExecPlugins
) -> kubernetes.client.Configuration:
    """The Configuration of a kubeconfig context (see ``Client.from_kubeconfig``), whose
    credential plugin, if it has one, ``plugins`` runs.

    Every mistake in the files is a ``ConfigError`` naming the file and the problem; so is
    a credential plugin that fails or does not answer within ``plugins.timeout`` seconds,
    at load time and at each later refresh of its credentials.
    """
    # Imported on use: the kubernetes package takes ~0.2 s to import.
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config import kube_config
    from kubernetes.config.config_exception import ConfigException

    given, existing = kubeconfig_files(path)
    if not existing:
        raise ConfigError(
            f"no kubeconfig found at {given}: set KUBECONFIG or pass path= to from_kubeconfig()"
        )
    documents = [(file, _read(file)) for file in existing]
    _check_chosen_user(documents, context)
    joined = os.pathsep.join(existing)
    configuration = k8s_client.Configuration()
    try:
        if context is not None:
            contexts, _ = k8s_config.list_kube_config_contexts(joined)  # type: ignore[no-untyped-call]
            names = [c.get("name") for c in contexts or ()]
            if context not in names:
                raise ConfigError(
                    f"context {context!r} not found in kubeconfig {joined}"
                    f" (contexts: {', '.join(map(str, names)) or 'none'})"
                )
        merger = kube_config.KubeConfigMerger(joined)  # type: ignore[no-untyped-call]
        loader = _deadline_loader()(
            config_dict=merger.config,
            active_context=context,
            config_base_path=None,
            config_persister=merger.save_changes,
            plugins=plugins,
        )
        loader.load_and_set(configuration)
    except ConfigException as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"cannot use kubeconfig {joined}: {message}") from None
    except OSError as exc:  # a file it names (tokenFile, a certificate) cannot be read
        raise ConfigError(
            f"cannot use kubeconfig {joined}: cannot read {exc.filename}: {exc.strerror}"
        ) from None
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # What the shape checks below do not foresee (bad base64 certificate data, ...).
        raise ConfigError(
            f"cannot use kubeconfig {joined}: invalid content: {' '.join(str(exc).split())}"
        ) from None
    return configuration


@functools.cache
def _deadline_loader() -> Any:
    """The kubernetes kubeconfig loader, running exec credential plugins itself.

    The loader's own run waits for the plugin without a deadline and only logs its
    failure, leaving a client without credentials (a bare 401 later). The loader calls
    ``_load_from_exec_plugin`` at load time and again when the token nears expiry, so
    overriding it covers the refreshes too.
    """
    from kubernetes.config import dateutil, exec_provider
    from kubernetes.config import kube_config as loaders

    # The package has no type hints: its names are Any here, and so is what they return.
    kube_config: Any = loaders
    parse_rfc3339: Any = dateutil.parse_rfc3339
    ExecProvider: Any = exec_provider.ExecProvider

    class DeadlineLoader(kube_config.KubeConfigLoader):  # type: ignore[misc]
        def __init__(self, *args: Any, plugins: ExecPlugins, **kwargs: Any) -> None:
            self._plugins = plugins
            super().__init__(*args, **kwargs)

        def _load_from_exec_plugin(self) -> bool | None:
            if "exec" not in self._user:
                return None
            base_path = self._get_base_path(self._cluster.path)
            provider = ExecProvider(self._user["exec"], base_path, self._cluster)
            status = self._plugins.run(provider)
            if "token" in status:
                self.token = f"Bearer {status['token']}"
            elif "clientCertificateData" in status and "clientKeyData" in status:
                for attribute, key in (
                    ("cert_file", "clientCertificateData"),
                    ("key_file", "clientKeyData"),
                ):
                    setattr(
                        self,
                        attribute,
                        kube_config.FileOrData(
                            status,
                            None,
                            data_key_name=key,
                            file_base_path=base_path,
                            base64_file_content=False,
                            temp_file_path=self._temp_file_path,
                        ).as_file(),
                    )
            else:
                raise ConfigError(
                    f"the credential plugin {provider.args[0]!r} answered neither a token"
                    " nor a client certificate and key"
                )
            if "expirationTimestamp" in status:
                self.expiry = parse_rfc3339(status["expirationTimestamp"])
            return True

    return DeadlineLoader


class ExecPlugins:
    """Runs the exec credential plugin of one client: each run with a deadline, and every
    run stopped when the client closes.

    A plugin is killed, with the processes it started, when its deadline passes or the
    client closes (:meth:`close`); after that none is run.

    Args:
        timeout: seconds a plugin may take to answer; ``None``: no limit.
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        # Guards _running and _closed, so that a run starting as the client closes is
        # stopped too; never held while a plugin runs. No other lock is taken under it.
        self._lock = threading.Lock()
        self._running: dict[subprocess.Popen[str], bool] = {}
        self._closed = False

    def close(self) -> None:
        """Stop the plugins running now (their runs raise ``ConfigError``) and run no more;
        thread-safe and idempotent."""
        with self._lock:
            self._closed = True
            running = list(self._running.items())
        for process, interactive in running:
            _kill(process, interactive)

    def run(self, provider: Any) -> dict[str, Any]:
        """The ``status`` of the ExecCredential the plugin prints.

        ``provider`` is the kubernetes package's ``ExecProvider`` (command, arguments,
        environment and working directory from the kubeconfig).

        Raises:
            ConfigError: the plugin cannot start, fails, does not answer within
                ``timeout`` seconds, prints no ExecCredential of its apiVersion, or was
                stopped (or not started) because the client closed.
        """
        command = str(provider.args[0])
        interactive = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
        spec: dict[str, Any] = {"interactive": interactive}
        if provider.cluster:
            spec["cluster"] = provider.cluster.value
        info = {"apiVersion": provider.api_version, "kind": "ExecCredential", "spec": spec}
        if self._closed:
            raise ConfigError(
                f"the credential plugin {command!r} was not run: the client is closed"
            )
        try:
            process = subprocess.Popen(
                provider.args,
                stdin=None if interactive else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=None if interactive else subprocess.PIPE,
                cwd=provider.cwd,
                env={**provider.env, "KUBERNETES_EXEC_INFO": json.dumps(info)},
                text=True,
                # Its own process group (unless it talks to the user's terminal), so that
                # a plugin past its deadline is stopped with whatever it started.
                process_group=None if interactive else 0,
            )
        except OSError as exc:
            raise ConfigError(f"the credential plugin {command!r} cannot run: {exc}") from None
        with self._lock:
            self._running[process] = interactive
            closed = self._closed
        if closed:  # the client closed while the plugin started
            _kill(process, interactive)
        try:
            stdout, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _stop(process, interactive)
            raise ConfigError(
                f"the credential plugin {command!r} did not answer within {self.timeout:g} s;"
                " it was stopped"
            ) from None
        finally:
            with self._lock:
                del self._running[process]
                closed = self._closed
        if process.returncode != 0 and closed:
            raise ConfigError(
                f"the credential plugin {command!r} was stopped: the client was closed"
            )
        return _credential_status(provider, command, process.returncode, stdout, stderr)


def _credential_status(
    provider: Any, command: str, returncode: int, stdout: str, stderr: str | None
) -> dict[str, Any]:
    """The status of the ExecCredential a plugin that exited with ``returncode`` printed."""
    if returncode != 0:
        said = " ".join((stderr or "").split())
        raise ConfigError(
            f"the credential plugin {command!r} failed with exit status {returncode}"
            + (f": {said}" if said else "")
        )
    try:
        credential = json.loads(stdout)
    except ValueError as exc:
        raise ConfigError(
            f"the credential plugin {command!r} printed no ExecCredential: {exc}"
        ) from None
    if not isinstance(credential, dict):
        credential = {}
    status = credential.get("status")
    if credential.get("apiVersion") != provider.api_version or not isinstance(status, dict):
        raise ConfigError(
            f"the credential plugin {command!r} printed no ExecCredential of apiVersion"
            f" {provider.api_version} with a status"
        )
    return status


def _kill(process: subprocess.Popen[str], interactive: bool) -> None:
    """Kill a plugin (with its process group, unless it shares the user's terminal)."""
    with contextlib.suppress(OSError):
        # A plugin already reaped is left alone: its group id may belong to another now.
        if process.poll() is not None:
            return
        if interactive:
            process.kill()
        else:
            os.killpg(process.pid, signal.SIGKILL)


def _stop(process: subprocess.Popen[str], interactive: bool) -> None:
    _kill(process, interactive)
    process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


_SECTIONS = {"clusters": "cluster", "contexts": "context", "users": "user"}


def _read(file: str) -> dict[str, Any]:
    """A kubeconfig file's document, checked for the shape the loader relies on."""
    import yaml

    try:
        with open(file, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"kubeconfig {file} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"kubeconfig {file} is not valid YAML{where}: {problem}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"kubeconfig {file} must be a YAML mapping (apiVersion, clusters, contexts,"
            f" users...), not a {_yaml_kind(document)}"
        )
    for section, field in _SECTIONS.items():
        entries = document.get(section)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise ConfigError(
                f"kubeconfig {file}: {section} must be a list, not a {_yaml_kind(entries)}"
            )
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ConfigError(f"kubeconfig {file}: {section}[{index}] has no name")
            if not isinstance(entry.get(field), dict | None):
                raise ConfigError(
                    f"kubeconfig {file}: {section}[{index}] ({entry['name']}): {field} must be"
                    f" a mapping, not a {_yaml_kind(entry[field])}"
                )
    current = document.get("current-context")
    if current is not None and not isinstance(current, str):
        raise ConfigError(f"kubeconfig {file}: current-context must be a context's name")
    return document


def _check_chosen_user(documents: list[tuple[str, dict[str, Any]]], context: str | None) -> None:
    """Refuse an exec credential plugin that cannot run: the kubernetes loader only logs
    that, and every request would then go out without credentials."""
    # kubectl's merge rule: the first file to set a name wins.
    chosen = context or next(
        (d["current-context"] for _, d in documents if d.get("current-context")), None
    )
    user_name = next(
        (
            (entry.get("context") or {}).get("user")
            for _, d in documents
            for entry in d.get("contexts") or ()
            if entry["name"] == chosen
        ),
        None,
    )
    for file, document in documents:
        for entry in document.get("users") or ():
            if entry["name"] != user_name:
                continue
            command = ((entry.get("user") or {}).get("exec") or {}).get("command")
            if isinstance(command, str) and not _runnable(command, os.path.dirname(file)):
                raise ConfigError(
                    f"kubeconfig {file}: user {user_name!r} runs the credential plugin"
                    f" {command!r}, which is not found or not executable"
                    + ("" if os.sep in command else " on PATH")
                )
            return


def _runnable(command: str, base: str) -> bool:
    if os.sep in command:
        # The plugin runs with the kubeconfig's directory as its working directory.
        path = os.path.join(base, command)
        return os.path.isfile(path) and os.access(path, os.X_OK)
    return shutil.which(command) is not None


def _yaml_kind(value: object) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def load_in_cluster(
    token_file: str | None = None, ca_file: str | None = None
) -> kubernetes.client.Configuration:
    """The Configuration of this pod's service account (see ``Client.in_cluster``)."""
    from kubernetes import client as k8s_client
    from kubernetes.config import incluster_config
    from kubernetes.config.config_exception import ConfigException

    configuration = k8s_client.Configuration()
    loader = incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
        token_filename=token_file or f"{_SERVICE_ACCOUNT}/token",
        cert_filename=ca_file or f"{_SERVICE_ACCOUNT}/ca.crt",
    )
    try:
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise ConfigError(f"not running in a Kubernetes cluster: {exc}") from None
    return configuration


def _bypasses_proxy(url: str, no_proxy: str, *, loopback: bool) -> bool:
    """Whether ``url`` is reached directly, as Go's ``httpproxy`` decides for client-go.

    ``no_proxy`` is comma-separated: ``*``; an IP literal or CIDR block (``10.0.0.0/8``,
    ``[::1]:6443``); a domain, which matches itself and its subdomains (``example.com``),
    or only its subdomains with a leading ``.`` or ``*.``. An IP literal or a domain may
    carry a port, which must then match too. With ``loopback``, ``localhost`` and loopback
    addresses are never proxied whatever ``no_proxy`` says (Go's rule for a proxy taken
    from the environment).
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = str(parts.port or {"https": 443, "http": 80}.get(parts.scheme) or "")
    ip = _ip_literal(host)
    if loopback and (host == "localhost" or (ip is not None and ip.is_loopback)):
        return True
    for entry in no_proxy.lower().split(","):
        entry = entry.strip()
        if entry == "*":
            return True
        if not entry:
            continue
        if "/" in entry:
            network = _cidr(entry)
            if network is not None and ip is not None and ip in network:
                return True
            if network is not None:
                continue
        entry_host, entry_port = _split_host_port(entry)
        if entry_port and entry_port != port:
            continue
        entry_ip = _ip_literal(entry_host)
        if entry_ip is not None:
            if entry_ip == ip:
                return True
        elif entry_host:
            suffix = entry_host[1:] if entry_host.startswith("*.") else entry_host
            if host.endswith(suffix if suffix.startswith(".") else "." + suffix):
                return True
            if not suffix.startswith(".") and host == suffix:
                return True
    return False


def _ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``text`` as Go's ``net.ParseCIDR`` reads it: an address, ``/``, a prefix length."""
    address, _, bits = text.partition("/")
    if not bits.isdigit() or _ip_literal(address) is None:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:  # a prefix longer than the address
        return None


def _split_host_port(entry: str) -> tuple[str, str]:
    """``host:port`` or ``[v6]:port`` split as Go's ``net.SplitHostPort``; else ``(entry, "")``."""
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if bracket and rest.startswith(":"):
            return host, rest[1:]
        return entry, ""
    host, colon, port = entry.rpartition(":")
    if not colon or ":" in host:  # no port, or a bare IPv6 address
        return entry, ""
    return host, port
