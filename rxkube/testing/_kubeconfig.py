"""Kubeconfigs for the test servers: one cluster, one user, one context, written privately."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml


def kubeconfig_document(
    name: str, server: str, *, ca_pem: bytes | None, token: str | None, namespace: str
) -> dict[str, Any]:
    """A kubeconfig (as a dict) whose cluster, user and context are all called ``name``."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    user: dict[str, Any] = {"token": token} if token is not None else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
        "preferences": {},
    }


def write_private(path: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    """Write a kubeconfig readable by its owner only (mode 0600, as kubectl writes them),
    also when it replaces an existing file; return its path."""
    target = Path(path)
    text = yaml.safe_dump(document, sort_keys=False).encode()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        handle.write(text)
    return target
