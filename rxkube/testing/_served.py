"""The resources the test server serves: ``ServedResource`` and the built-in kinds' differences.

A leaf module: the store, server-side apply, discovery and the app all read it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._apivalidation import quote
from ..resource import STORED_VERBS, BuiltinKind, Resource

Admit = Callable[[dict[str, Any], "dict[str, Any] | None"], dict[str, Any]]
"""Checks and completes an object about to be stored, from (new, old or None); raises a
``StatusError`` to refuse it."""


@dataclass(frozen=True, slots=True)
class ScalePaths:
    """Where the ``/scale`` subresource reads and writes a resource's replicas.

    Attributes:
        spec_replicas: the dotted path of the desired replicas (``spec.replicas``).
        status_replicas: the dotted path of the observed replicas.
        selector: the dotted path of the label selector, or None.
        selector_form: how the selector is stored: a ``string`` already serialized (custom
            resources' ``labelSelectorPath``), a ``LabelSelector`` object, or a ``map`` of
            labels (ReplicationControllers).
    """

    spec_replicas: str = "spec.replicas"
    status_replicas: str = "status.replicas"
    selector: str | None = "spec.selector"
    selector_form: Literal["string", "LabelSelector", "map"] = "LabelSelector"


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """A column of a custom resource's Table output: one of a CRD version's
    ``additionalPrinterColumns``.

    Attributes:
        name: the column's header, e.g. ``"Replicas"``.
        type: ``string``, ``integer``, ``number``, ``boolean`` or ``date`` (shown as an age).
        json_path: where the value is, e.g. ``".spec.replicas"``.
        format: an OpenAPI format hint (``name`` for the name column).
        description: a human-readable description of the column.
        priority: 0 for the standard view, 1 and more for ``kubectl get -o wide`` only.
    """

    name: str
    type: str
    json_path: str
    format: str = ""
    description: str = ""
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ServedResource:
    """A resource the server serves, with the server-side behaviour that differs by kind.

    Attributes:
        resource: group, version, kind, plural and scope.
        singular: the singular name announced by discovery.
        status_subresource: ``/status`` exists; the main endpoint then ignores status
            changes and a create through HTTP resets the status.
        fields: field paths usable in field selectors besides ``metadata.name`` and
            (for a namespaced resource) ``metadata.namespace``.
        field_refusal: what a field selector on any other path answers (a 400): the
            resource's field label conversion's error, with ``{label}`` and ``{quoted}``
            (Go's ``%q`` of it) to fill in.
        returns_deleted_object: a delete answers with the object rather than a ``Status``.
        create_status: the status an HTTP create sets (pods start ``Pending``,
            namespaces ``Active``).
        strategic_merge: strategic merge patches are accepted (built-in kinds only).
        openapi_schema: a custom resource's OpenAPI v3 schema (a CRD version's
            ``openAPIV3Schema``), published under ``/openapi``; None publishes an object
            that keeps any field. Built-in kinds' schemas are shipped with the server.
        scale: the ``/scale`` subresource, when served.
        storage_version: the version objects are stored in, when another version of the
            same resource is (a CustomResourceDefinition's storage version); objects are
            read in the version asked for.
        storage_group: the group objects are stored in, when another group's resource
            holds them (``events.k8s.io`` Events are core Events).
        definition: the CustomResourceDefinition that defines the resource, if any.
        admit: completes and checks every object written (pruning, defaulting and
            validation against a custom resource's schema, a definition's own validation).
        decode: how an object read back from storage is decoded, given as stored and
            returned as read (itself when that changes nothing): a custom resource's
            schema defaults what was stored before its defaults. None: read as stored.
            The store uses the storage version's.
        warn: the warnings a write of an object sends, from (new, old or None), after
            its validation (the strategy's ``WarningsOnCreate`` and ``WarningsOnUpdate``).
        committed: called with an object's name after each write, once the store's lock
            is released (a CustomResourceDefinition is then served).
        deleting: what a delete request changes in an object before its finalizers are
            looked at (a CustomResourceDefinition gets its cleanup finalizer).
        verbs: the verbs discovery lists and the server accepts on the resource itself.
        categories: the categories discovery lists (``kubectl get all`` reads ``all``).
        printer_columns: a custom resource's Table columns after Name (a CRD version's
            ``additionalPrinterColumns``); none gives Age (built-in kinds print as
            kube-apiserver's printers do, see ``_tables.py``).
        tracks_generation: ``metadata.generation`` is 1 on create and grows with each
            change of the content (custom resources and :data:`GENERATION_TRACKED`);
            otherwise it stays what the create gave (usually none).
        create_on_update: a PUT of a missing object creates it (the registry strategy's
            ``AllowCreateOnUpdate``).
        unconditional_update: a PUT without ``metadata.resourceVersion`` is accepted
            (``AllowUnconditionalUpdate``); otherwise it is a 422.
    """

    resource: Resource
    singular: str
    status_subresource: bool = False
    fields: frozenset[str] = frozenset()
    field_refusal: str = "field label not supported: {label}"
    returns_deleted_object: bool = False
    create_status: Mapping[str, Any] | None = None
    strategic_merge: bool = True
    openapi_schema: Mapping[str, Any] | None = None
    scale: ScalePaths | None = None
    storage_version: str | None = None
    storage_group: str | None = None
    definition: str = ""
    admit: Admit | None = field(default=None, compare=False)
    decode: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None, compare=False)
    warn: Callable[[dict[str, Any], dict[str, Any] | None], list[str]] | None = field(
        default=None, compare=False
    )
    committed: Callable[[str], None] | None = field(default=None, compare=False)
    deleting: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None, compare=False)
    verbs: tuple[str, ...] = STORED_VERBS
    categories: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    tracks_generation: bool = True
    create_on_update: bool = False
    unconditional_update: bool = True

    @property
    def stored_api_version(self) -> str:
        """The ``apiVersion`` objects written through this resource are stored with."""
        res = self.resource
        group = res.group if self.storage_group is None else self.storage_group
        version = self.storage_version or res.version
        return f"{group}/{version}" if group else version

    @property
    def storage_key(self) -> tuple[str, str]:
        """(group, plural) of the storage this resource's versions share, as one etcd key
        prefix does."""
        res = self.resource
        return (res.group if self.storage_group is None else self.storage_group, res.plural)

    @property
    def stored(self) -> bool:
        """Objects are kept and listed; otherwise each create is answered and forgotten (reviews)."""
        return "list" in self.verbs

    @property
    def selectable_fields(self) -> frozenset[str]:
        """Every field path a field selector may use on this resource."""
        fields = {"metadata.name"} | set(self.fields)
        if self.resource.namespaced:
            fields.add("metadata.namespace")
        return frozenset(fields)

    def refused_field(self, label: str) -> str | None:
        """The 400 message of a field selector on ``label``, or None if it is selectable."""
        if label in self.selectable_fields:
            return None
        return self.field_refusal.format(label=label, quoted=quote(label))


_POD_FIELDS = frozenset(
    {
        "spec.host",  # an old v1 client's spec.nodeName: see _conversion.storage_fields
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


_EVENTS_V1_FIELDS = frozenset(
    {
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
        "reason",
        "reportingController",
        "type",
    }
)
"""pkg/apis/events/v1's ``AddFieldLabelConversionsForEvent`` (but ``source``, which core
Events do not offer here either)."""

_SHARED_STORAGE = {
    # pkg/registry/events and pkg/registry/autoscaling: one registry (storage) per resource,
    # served at each version. (group, version, plural): (storage group, storage version).
    ("events.k8s.io", "v1", "events"): ("", "v1"),
    ("autoscaling", "v1", "horizontalpodautoscalers"): ("autoscaling", "v2"),
}

_SCALE_EXCEPTIONS = {
    # The registries' ScaleREST (pkg/registry/apps/deployment/storage/storage.go and its
    # siblings) read spec.selector as a LabelSelector, but for ReplicationControllers' map.
    "replicationcontrollers": ScalePaths(selector_form="map"),
}

GENERATION_TRACKED = frozenset(
    {
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "replicationcontrollers",
        "jobs",
        "cronjobs",
        "poddisruptionbudgets",
        "networkpolicies",
        "ingresses",
        "ingressclasses",
        "endpointslices",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
        "flowschemas",
        "prioritylevelconfigurations",
        "customresourcedefinitions",
    }
)
"""The built-in kinds whose registry strategy sets ``Generation = 1`` in ``PrepareForCreate``
and bumps it in ``PrepareForUpdate`` (kubernetes v1.32 ``pkg/registry/*/*/strategy.go``).
The others (pods until v1.33, config maps, secrets, services, ...) keep what the create
gave: ``rest.BeforeCreate`` leaves it, ``rest.BeforeUpdate`` copies the stored one."""


_FIELDS = {
    "pods": _POD_FIELDS,
    "events": _EVENT_FIELDS,
    "secrets": frozenset({"type"}),
    "namespaces": frozenset({"status.phase"}),
    "nodes": frozenset({"spec.unschedulable"}),
    "replicationcontrollers": frozenset({"status.replicas"}),
    "services": frozenset({"spec.clusterIP", "spec.type"}),
    "certificatesigningrequests": frozenset({"spec.signerName"}),
}
"""The built-in kinds that register a field label conversion (kubernetes v1.32
``pkg/apis/core/v1/conversion.go``, ``pkg/apis/certificates/v1/conversion.go``) and the
fields it takes beyond name and namespace, each also in the registry's ``GetAttrs``."""

_DEFAULT_REFUSAL = (
    '{quoted} is not a known field selector: only "metadata.name", "metadata.namespace"'
)
"""k8s.io/apimachinery/pkg/runtime/conversion.go ``DefaultMetaV1FieldSelectorConversion``:
the field labels of a kind that registers no conversion of its own, whatever its scope (a
ReplicaSet's ``status.replicas``, in its registry's ``GetAttrs``, is refused so too)."""

_JOB_REFUSAL = "field label {quoted} not supported for batchv1.Job"
"""pkg/apis/batch/v1/conversion.go. It takes ``status.successful`` too, which this server
refuses (its value is ``status.succeeded`` as a string, not a path of the object)."""


_CREATE_ON_UPDATE = frozenset(
    {
        ("", "endpoints"),
        ("", "events"),
        ("", "limitranges"),
        ("", "services"),
        ("coordination.k8s.io", "leases"),
        ("events.k8s.io", "events"),
        ("node.k8s.io", "runtimeclasses"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "roles"),
    }
)
"""The built-in kinds whose strategy's ``AllowCreateOnUpdate`` is true
(pkg/registry/coordination/lease/strategy.go and its siblings), as a v1.36 kube-apiserver
answers a PUT of a missing object of each kind: the others' is a 404."""

_CONDITIONAL_UPDATE = frozenset(
    {
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
        ("apiregistration.k8s.io", "apiservices"),
        ("coordination.k8s.io", "leases"),
        ("node.k8s.io", "runtimeclasses"),
        ("policy", "poddisruptionbudgets"),
        ("storage.k8s.io", "csidrivers"),
    }
)
"""The built-in kinds whose strategy's ``AllowUnconditionalUpdate`` is false, as a v1.36
kube-apiserver answers a PUT without resourceVersion (of the kinds it was asked for)."""


def _field_labels(plural: str) -> tuple[frozenset[str], str]:
    """A built-in kind's selectable fields beyond name (and namespace), and its refusal."""
    if plural in _FIELDS:
        return _FIELDS[plural], "field label not supported: {label}"
    if plural == "jobs":
        return frozenset(), _JOB_REFUSAL
    return frozenset({"metadata.namespace"}), _DEFAULT_REFUSAL


def builtin_served(kind: BuiltinKind) -> ServedResource:
    """How the server treats one of :data:`rxkube.resource.BUILTIN_KINDS`."""
    resource = kind.resource
    plural = resource.plural
    fields, refusal = _field_labels(plural)
    if resource.group == "events.k8s.io":
        fields = _EVENTS_V1_FIELDS
    storage_group, storage_version = _SHARED_STORAGE.get(
        (resource.group, resource.version, plural), (None, None)
    )
    return ServedResource(
        resource,
        singular=resource.kind.lower(),
        status_subresource="status" in kind.subresources,
        fields=fields,
        field_refusal=refusal,
        storage_version=storage_version,
        storage_group=storage_group,
        # The registries that set ReturnDeletedObject (pkg/registry/core/*/storage).
        returns_deleted_object=plural
        in ("pods", "persistentvolumes", "persistentvolumeclaims", "podtemplates"),
        scale=_SCALE_EXCEPTIONS.get(plural, ScalePaths()) if "scale" in kind.subresources else None,
        tracks_generation=plural in GENERATION_TRACKED,
        create_on_update=(resource.group, plural) in _CREATE_ON_UPDATE,
        unconditional_update=(resource.group, plural) not in _CONDITIONAL_UPDATE,
        # What kube-apiserver's create strategies set: a pod starts Pending, a namespace Active.
        create_status={"pods": {"phase": "Pending"}, "namespaces": {"phase": "Active"}}.get(plural),
        verbs=kind.verbs,
        categories=kind.categories,
    )
