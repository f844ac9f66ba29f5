"""Connection settings from the ``kubernetes`` package's loaders: kubeconfig, in-cluster, Configuration.

``Client.from_kubeconfig``, ``Client.in_cluster`` and ``Client.from_configuration`` are
built on these: a kubeconfig file or the mounted service account becomes a
``kubernetes.client.Configuration``, and a Configuration becomes ``Client`` keyword
arguments (the generated API classes are never used). Errors are ``ConfigError``.
"""

from __future__ import annotations

import os
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
    no_proxy = getattr(cfg, "no_proxy", None)
    if proxy and no_proxy and _bypasses_proxy(host, no_proxy):
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


def load_kubeconfig(
    path: str | None = None, context: str | None = None
) -> kubernetes.client.Configuration:
    """The Configuration of a kubeconfig context (see ``Client.from_kubeconfig``)."""
    # Imported on use: the kubernetes package takes ~0.2 s to import.
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    given = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
    files = [os.path.expanduser(p) for p in given.split(os.pathsep) if p]
    existing = [f for f in files if os.path.isfile(f)]
    if not existing:
        raise ConfigError(
            f"no kubeconfig found at {given}: set KUBECONFIG or pass path= to from_kubeconfig()"
        )
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
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=joined, context=context, client_configuration=configuration
        )
    except ConfigException as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"cannot use kubeconfig {joined}: {message}") from None
    return configuration


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


def _bypasses_proxy(url: str, no_proxy: str) -> bool:
    """Whether ``no_proxy`` (``*``, hosts, ``host:port``, domain suffixes) excludes ``url``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    host_port = f"{host}:{parts.port}" if parts.port else host
    for entry in no_proxy.lower().replace(" ", "").split(","):
        entry = entry.lstrip(".")
        if entry == "*" or entry in (host, host_port):
            return True
        if entry and (host.endswith("." + entry) or host_port.endswith("." + entry)):
            return True
    return False
