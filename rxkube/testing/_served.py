"""The resources the test server serves: ``ServedResource`` and the built-in kinds' differences.

A leaf module: the store, server-side apply, discovery and the app all read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..resource import Resource


@dataclass(frozen=True, slots=True)
class ServedResource:
    """A resource the server serves, with the server-side behaviour that differs by kind.

    Attributes:
        resource: group, version, kind, plural and scope.
        singular: the singular name announced by discovery.
        status_subresource: ``/status`` exists; the main endpoint then ignores status
            changes and a create through HTTP resets the status.
        fields: field paths usable in field selectors besides ``metadata.name`` and
            ``metadata.namespace``.
        returns_deleted_object: a delete answers with the object rather than a ``Status``.
        create_status: the status an HTTP create sets (pods start ``Pending``,
            namespaces ``Active``).
        strategic_merge: strategic merge patches are accepted (built-in kinds only).
        openapi_schema: a custom resource's OpenAPI v3 schema (a CRD version's
            ``openAPIV3Schema``), published under ``/openapi``; None publishes an object
            that keeps any field. Built-in kinds' schemas are shipped with the server.
    """

    resource: Resource
    singular: str
    status_subresource: bool = False
    fields: frozenset[str] = frozenset()
    returns_deleted_object: bool = False
    create_status: Mapping[str, Any] | None = None
    strategic_merge: bool = True
    openapi_schema: Mapping[str, Any] | None = None

    @property
    def selectable_fields(self) -> frozenset[str]:
        """Every field path a field selector may use on this resource."""
        fields = {"metadata.name"} | set(self.fields)
        if self.resource.namespaced:
            fields.add("metadata.namespace")
        return frozenset(fields)


_POD_FIELDS = frozenset(
    {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    }
)
_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
    }
)


def builtin_served(resource: Resource) -> ServedResource:
    """How the server treats one of :data:`rxkube.resource.BUILTIN_RESOURCES`."""
    plural = resource.plural
    return ServedResource(
        resource,
        singular=resource.kind.lower(),
        status_subresource=plural
        in ("pods", "services", "namespaces", "nodes", "deployments", "replicasets"),
        fields={
            "pods": _POD_FIELDS,
            "events": _EVENT_FIELDS,
            "secrets": frozenset({"type"}),
            "namespaces": frozenset({"status.phase"}),
            "nodes": frozenset({"spec.unschedulable"}),
            "replicasets": frozenset({"status.replicas"}),
        }.get(plural, frozenset()),
        returns_deleted_object=plural == "pods",
        # What kube-apiserver's create strategies set: a pod starts Pending, a namespace Active.
        create_status={"pods": {"phase": "Pending"}, "namespaces": {"phase": "Active"}}.get(plural),
    )
