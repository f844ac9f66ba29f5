"""Discovery documents (``/version``, ``/api``, ``/apis``, ...) for the served resources.

Complete enough for ``kubernetes.dynamic.DynamicClient`` and kubectl's legacy
(non-aggregated) discovery.
"""

from __future__ import annotations

from typing import Any

from ._served import ServedResource

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+rxkube",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}
"""What ``/version`` answers: the kube-apiserver release whose behaviour the server follows."""

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def api_versions(server_address: str) -> dict[str, Any]:
    """The ``/api`` document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_versions(served: list[ServedResource]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for item in served:
        res = item.resource
        if res.group:
            versions = groups.setdefault(res.group, [])
            if res.version not in versions:
                versions.append(res.version)
    return groups


def _api_group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(served: list[ServedResource]) -> dict[str, Any]:
    """The ``/apis`` document."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            _api_group(name, versions) for name, versions in _group_versions(served).items()
        ],
    }


def api_group(served: list[ServedResource], group: str) -> dict[str, Any] | None:
    """The ``/apis/{group}`` document, or None for an unknown group."""
    versions = _group_versions(served).get(group)
    if versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group, versions)}


def api_resource_list(
    served: list[ServedResource], group: str, version: str
) -> dict[str, Any] | None:
    """The ``/api/v1`` or ``/apis/{group}/{version}`` document, or None when unknown."""
    resources: list[dict[str, Any]] = []
    for item in served:
        res = item.resource
        if res.group != group or res.version != version:
            continue
        entry: dict[str, Any] = {
            "name": res.plural,
            "singularName": item.singular,
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": list(_VERBS),
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        resources.append(entry)
        if item.status_subresource:
            resources.append(
                {
                    "name": f"{res.plural}/status",
                    "singularName": "",
                    "namespaced": res.namespaced,
                    "kind": res.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if item.scale is not None:
            resources.append(
                {
                    "name": f"{res.plural}/scale",
                    "singularName": "",
                    "namespaced": res.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
    if not resources and (group, version) != ("", "v1"):
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
