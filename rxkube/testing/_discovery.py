"""Discovery documents (``/version``, ``/api``, ``/apis``, ...) for the served resources.

Both forms kube-apiserver serves: the legacy documents (``APIVersions``, ``APIGroupList``,
``APIResourceList``), read by ``kubernetes.dynamic.DynamicClient``, and the aggregated
``apidiscovery.k8s.io/v2`` ``APIGroupDiscoveryList`` at ``/api`` and ``/apis`` that kubectl
asks for first (k8s.io/apiserver pkg/endpoints/discovery/aggregated).
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

_SUBRESOURCE_VERBS = ["get", "patch", "update"]
_SCALE_KIND = {"group": "autoscaling", "version": "v1", "kind": "Scale"}

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
"""The media type of the aggregated discovery document (Accept and Content-Type)."""


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
    """Each group's versions, preferred first; the core group (``""``) first of all."""
    groups: dict[str, list[str]] = {"": ["v1"]}
    for item in served:
        res = item.resource
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
            _api_group(name, versions) for name, versions in _group_versions(served).items() if name
        ],
    }


def api_group(served: list[ServedResource], group: str) -> dict[str, Any] | None:
    """The ``/apis/{group}`` document, or None for an unknown group."""
    versions = _group_versions(served).get(group)
    if versions is None or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group, versions)}


def _in_version(served: list[ServedResource], group: str, version: str) -> list[ServedResource]:
    """The resources of one group version, by name, as kube-apiserver lists them."""
    found = [s for s in served if (s.resource.group, s.resource.version) == (group, version)]
    return sorted(found, key=lambda s: s.resource.plural)


def _subresources(item: ServedResource) -> list[tuple[str, dict[str, str]]]:
    """(name, response kind) of each subresource discovery lists."""
    res = item.resource
    own = {"group": res.group, "version": res.version, "kind": res.kind}
    found = []
    if item.scale is not None:
        found.append(("scale", _SCALE_KIND))
    if item.status_subresource:
        found.append(("status", own))
    return found


def api_resource_list(
    served: list[ServedResource], group: str, version: str
) -> dict[str, Any] | None:
    """The ``/api/v1`` or ``/apis/{group}/{version}`` document, or None when unknown."""
    resources: list[dict[str, Any]] = []
    for item in _in_version(served, group, version):
        res = item.resource
        entry: dict[str, Any] = {
            "name": res.plural,
            "singularName": item.singular,
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": list(item.verbs),
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        if item.categories:
            entry["categories"] = list(item.categories)
        resources.append(entry)
        for name, kind in _subresources(item):
            sub: dict[str, Any] = {
                "name": f"{res.plural}/{name}",
                "singularName": "",
                "namespaced": res.namespaced,
            }
            if kind["group"] != res.group or kind["version"] != res.version:
                sub |= {"group": kind["group"], "version": kind["version"]}
            resources.append(sub | {"kind": kind["kind"], "verbs": list(_SUBRESOURCE_VERBS)})
    if not resources and (group, version) != ("", "v1"):
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _discovered_resource(item: ServedResource) -> dict[str, Any]:
    """One ``APIResourceDiscovery``: the resource with its subresources inside it."""
    res = item.resource
    entry: dict[str, Any] = {
        "resource": res.plural,
        "responseKind": {"group": res.group, "version": res.version, "kind": res.kind},
        "scope": "Namespaced" if res.namespaced else "Cluster",
        "singularResource": item.singular,
        "verbs": list(item.verbs),
    }
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if item.categories:
        entry["categories"] = list(item.categories)
    subresources = [
        {"subresource": name, "responseKind": dict(kind), "verbs": list(_SUBRESOURCE_VERBS)}
        for name, kind in _subresources(item)
    ]
    if subresources:
        entry["subresources"] = subresources
    return entry


def aggregated(served: list[ServedResource], *, legacy: bool) -> dict[str, Any]:
    """The ``APIGroupDiscoveryList`` of ``/api`` (``legacy``: the core group) or ``/apis``."""
    items = []
    for group, versions in _group_versions(served).items():
        if bool(group) == legacy:
            continue
        metadata: dict[str, Any] = {"name": group} if group else {}
        items.append(
            {
                "metadata": metadata | {"creationTimestamp": None},
                "versions": [
                    {
                        "version": version,
                        "resources": [
                            _discovered_resource(item)
                            for item in _in_version(served, group, version)
                        ],
                        "freshness": "Current",
                    }
                    for version in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
