"""Object metadata checked as kube-apiserver checks it: Go's JSON types first, then validation.

kube-apiserver decodes a body into typed Go structs, so a ``metadata`` field of the wrong
JSON type (``labels: "x"``, a number in ``finalizers``) fails decoding with Go's
``encoding/json`` message, a 400; the decoded metadata is then validated
(``k8s.io/apimachinery/pkg/api/validation.ValidateObjectMetaAccessor``): names, label
keys and values, annotation keys and total size, finalizer names, owner references,
with a 422 ``Invalid`` whose causes name each field. Only ``metadata`` is checked here:
this server knows no other schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._apivalidation import (
    dns1035_label,
    dns1123_label,
    dns1123_subdomain,
    label_value,
    path_segment_name,
    qualified_name,
    quote,
)
from ..resource import BUILTIN_RESOURCES, Resource

_ANNOTATIONS_MAX_BYTES = 256 * 1024
_ORPHAN = "orphan"
_FOREGROUND = "foregroundDeletion"
_STANDARD_FINALIZERS = frozenset({"kubernetes", _ORPHAN, _FOREGROUND})
_BUILTIN = frozenset((r.group, r.plural) for r in BUILTIN_RESOURCES)
_APIMACHINERY_METADATA = frozenset(
    {
        ("", "events"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("apiregistration.k8s.io", "apiservices"),
        ("coordination.k8s.io", "leases"),
        ("node.k8s.io", "runtimeclasses"),
        ("policy", "poddisruptionbudgets"),
    }
)
"""The built-in kinds whose validation checks metadata with apimachinery's
``ValidateObjectMeta`` alone, as custom resources' does; the others' goes through
pkg/apis/core/validation's, which adds ``validateKubeFinalizerName`` (as a v1.36
kube-apiserver answers a finalizer ``x`` on each kind)."""

GENERATED_NAME_MAX = 63 - 5
"""How much of ``generateName`` a generated name keeps (five random characters follow)."""

# ObjectMeta's JSON fields and their Go types, as decoding errors name them.
_META_TYPES = {
    "name": "string",
    "generateName": "string",
    "namespace": "string",
    "selfLink": "string",
    "uid": "types.UID",
    "resourceVersion": "string",
    "generation": "int64",
    "creationTimestamp": "v1.Time",
    "deletionTimestamp": "v1.Time",
    "deletionGracePeriodSeconds": "int64",
    "labels": "map[string]string",
    "annotations": "map[string]string",
    "ownerReferences": "[]v1.OwnerReference",
    "finalizers": "[]string",
    "managedFields": "[]v1.ManagedFieldsEntry",
}
_OWNER_TYPES = {
    "apiVersion": "string",
    "kind": "string",
    "name": "string",
    "uid": "types.UID",
    "controller": "bool",
    "blockOwnerDeletion": "bool",
}
_MANAGED_TYPES = {
    "manager": "string",
    "operation": "v1.ManagedFieldsOperationType",
    "apiVersion": "string",
    "time": "v1.Time",
    "fieldsType": "string",
    "fieldsV1": "v1.FieldsV1",
    "subresource": "string",
}
_STRING_TYPES = frozenset({"string", "types.UID", "v1.ManagedFieldsOperationType"})


def json_kind(value: Any) -> str:
    """How Go names the JSON type of a value in a decoding error."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    return "array"


def _type_mismatch(value: Any, go_type: str) -> str | None:
    """What Go's decoder reports for ``value`` into ``go_type`` ("string", "number 1.5"...), or None."""
    if value is None or go_type == "v1.FieldsV1":
        return None
    kind = json_kind(value)
    if go_type in _STRING_TYPES or go_type == "v1.Time":
        return None if kind == "string" else kind
    if go_type == "bool":
        return None if kind == "bool" else kind
    if go_type == "int64":
        if kind != "number":
            return kind
        if isinstance(value, float) or not -(2**63) <= value < 2**63:
            return f"number {value}"
        return None
    if go_type.startswith("map["):
        return None if kind == "object" else kind
    return None if kind == "array" else kind


class _Mismatch(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _check_fields(
    fields: Mapping[str, Any], types: Mapping[str, str], struct: str, path: str
) -> None:
    for key, value in fields.items():
        go_type = types.get(key)
        if go_type is None:
            continue  # unknown fields are dropped, not refused
        field_path = f"{path}.{key}" if path else key
        mismatch = _type_mismatch(value, go_type)
        if mismatch is not None:
            if go_type == "v1.Time":  # metav1.Time decodes itself, without field context
                raise _Mismatch(f"json: cannot unmarshal {mismatch} into Go value of type string")
            raise _Mismatch(
                f"json: cannot unmarshal {mismatch} into Go struct field "
                f"{struct}.{field_path} of type {go_type}"
            )
        if value is None:
            continue
        if go_type == "map[string]string":
            for item in value.values():
                found = _type_mismatch(item, "string")
                if found is not None:
                    raise _Mismatch(
                        f"json: cannot unmarshal {found} into Go struct field "
                        f"{struct}.{field_path} of type string"
                    )
        elif go_type.startswith("[]"):
            element = go_type[2:]
            nested = {"v1.OwnerReference": _OWNER_TYPES, "v1.ManagedFieldsEntry": _MANAGED_TYPES}
            for item in value:
                if element == "string":
                    found = _type_mismatch(item, "string")
                    if found is not None:
                        raise _Mismatch(
                            f"json: cannot unmarshal {found} into Go struct field "
                            f"{struct}.{field_path} of type string"
                        )
                elif item is not None:
                    if not isinstance(item, dict):
                        raise _Mismatch(
                            f"json: cannot unmarshal {json_kind(item)} into Go struct field "
                            f"{struct}.{field_path} of type {element}"
                        )
                    _check_fields(item, nested[element], element.split(".")[-1], field_path)


def metadata_type_error(obj: Mapping[str, Any], kind: str, *, typed: bool) -> str | None:
    """Go's decoding error for the first ``metadata`` field of a wrong JSON type, or None.

    Args:
        obj: the decoded object.
        kind: its kind (``ConfigMap``), the Go struct holding ``metadata``.
        typed: a built-in kind, decoded as a whole into its Go struct (field paths start
            at ``metadata``); a custom resource's metadata is decoded on its own.
    """
    meta = obj.get("metadata")
    if meta is None:
        return None
    try:
        if not isinstance(meta, dict):
            if typed:
                raise _Mismatch(
                    f"json: cannot unmarshal {json_kind(meta)} into Go struct field "
                    f"{kind}.metadata of type v1.ObjectMeta"
                )
            raise _Mismatch(
                f"json: cannot unmarshal {json_kind(meta)} into Go value of type v1.ObjectMeta"
            )
        _check_fields(meta, _META_TYPES, "ObjectMeta", "metadata" if typed else "")
    except _Mismatch as mismatch:
        return mismatch.message
    return None


# ------------------------------------------------------------------ validation

Cause = tuple[str, str]
"""A validation failure: ``(field, body)``, the body as kube-apiserver writes it
(``Invalid value: "x": ...``, ``Required value``, ``Forbidden: ...``)."""


# The built-in kinds whose names are not DNS subdomains (the rule of every other kind).
_NAME_RULES = {("", "services"): dns1035_label, ("", "namespaces"): dns1123_label}
# pkg/apis/rbac/validation ValidateRBACName: any path segment ("system:controller:x").
_PATH_SEGMENT_NAMES = frozenset(
    ("rbac.authorization.k8s.io", plural)
    for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
)


def _name_errors(resource: Resource, name: str, *, prefix: bool) -> list[str]:
    key = (resource.group, resource.plural)
    if key in _PATH_SEGMENT_NAMES:
        return path_segment_name(name)  # a prefix too: ValidateRBACName ignores ``prefix``
    if prefix and len(name) > 1 and name.endswith("-"):
        name = name[:-2] + "a"  # a generated suffix follows a prefix's trailing dash
    return _NAME_RULES.get(key, dns1123_subdomain)(name)


def generated_name(prefix: str, suffix: str) -> str:
    """A name generated from ``generateName``, the prefix cut to keep it within 63 characters."""
    return prefix[:GENERATED_NAME_MAX] + suffix


def go_strings(values: list[str]) -> str:
    """A ``[]string`` as Go's ``%#v`` prints it: ``[]string{"a", "b"}``."""
    return "[]string{" + ", ".join(quote(v) for v in values) + "}"


def _kube_finalizer_causes(resource: Resource, finalizers: list[str]) -> list[Cause]:
    """pkg/apis/core/validation ``validateKubeFinalizerName`` for each finalizer, on the
    kinds whose metadata it validates: a name without a ``/`` must be a standard one."""
    key = (resource.group, resource.plural)
    if key not in _BUILTIN or key in _APIMACHINERY_METADATA:
        return []
    return [
        (
            f"metadata.finalizers[{index}]",
            f"Invalid value: {quote(finalizer)}: name is neither a standard finalizer name "
            "nor is it fully qualified",
        )
        for index, finalizer in enumerate(finalizers)
        if "/" not in finalizer and finalizer not in _STANDARD_FINALIZERS
    ]


def finalizer_warnings(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[str]:
    """The warnings a custom resource's write sends about each finalizer it adds, in
    order (apiextensions-apiserver registry/customresource/strategy.go
    ``generateWarningsFromObj``): one that is no qualified name, one without a ``/`` that
    is not standard."""

    def finalizers(obj: Mapping[str, Any] | None) -> set[str]:
        meta = (obj or {}).get("metadata")
        return {str(f) for f in (meta.get("finalizers") or ()) if f} if meta else set()

    warnings: list[str] = []
    for finalizer in sorted(finalizers(new) - finalizers(old)):
        shown = f"metadata.finalizers: {quote(finalizer)}"
        warnings.extend(f"{shown}: {message}" for message in qualified_name(finalizer))
        if "/" not in finalizer and finalizer not in _STANDARD_FINALIZERS:
            warnings.append(
                f"{shown}: prefer a domain-qualified finalizer name to avoid accidental "
                "conflicts with other finalizer writers"
            )
    return warnings


def validate_metadata(
    resource: Resource, meta: Mapping[str, Any], old: Mapping[str, Any] | None = None
) -> list[Cause]:
    """The causes kube-apiserver's ObjectMeta validation finds; ``old`` for an update.

    An update keeps the stored name, namespace, uid and generation before validation (as
    kube-apiserver's ``BeforeUpdate`` does), so only labels, annotations and owner
    references are checked then. Type errors must have been ruled out
    (:func:`metadata_type_error`).
    """
    causes: list[Cause] = []

    def bad(field: str, value: Any, message: str) -> None:
        causes.append((field, f"Invalid value: {quote(value)}: {message}"))

    if old is None:
        generate = meta.get("generateName") or ""
        if generate:
            for message in _name_errors(resource, generate, prefix=True):
                bad("metadata.generateName", generate, message)
        name = meta.get("name") or ""
        if not name:
            causes.append(("metadata.name", "Required value: name or generateName is required"))
        else:
            for message in _name_errors(resource, name, prefix=False):
                bad("metadata.name", name, message)
        namespace = meta.get("namespace") or ""
        if resource.namespaced:
            if not namespace:
                causes.append(("metadata.namespace", "Required value"))
            else:
                for message in dns1123_label(namespace):
                    bad("metadata.namespace", namespace, message)
        elif namespace:
            causes.append(("metadata.namespace", "Forbidden: not allowed on this type"))
        generation = meta.get("generation") or 0
        if generation < 0:
            causes.append(
                (
                    "metadata.generation",
                    f"Invalid value: {generation}: must be greater than or equal to 0",
                )
            )
    for key, value in (meta.get("labels") or {}).items():
        for message in qualified_name(key):
            bad("metadata.labels", key, message)
        for message in label_value(value or ""):
            bad("metadata.labels", value, message)
    annotations = meta.get("annotations") or {}
    for key in annotations:
        for message in qualified_name(key.lower()):
            bad("metadata.annotations", key, message)
    if sum(len(k.encode()) + len((v or "").encode()) for k, v in annotations.items()) > (
        _ANNOTATIONS_MAX_BYTES
    ):
        causes.append(
            (
                "metadata.annotations",
                f"Too long: may not be more than {_ANNOTATIONS_MAX_BYTES} bytes",
            )
        )
    causes.extend(_owner_causes(meta.get("ownerReferences") or []))
    finalizers = [f or "" for f in meta.get("finalizers") or []]
    if old is None:
        for finalizer in finalizers:
            for message in qualified_name(finalizer):
                bad("metadata.finalizers", finalizer, message)
        if _ORPHAN in finalizers and _FOREGROUND in finalizers:
            causes.append(
                (
                    "metadata.finalizers",
                    f"Invalid value: {go_strings(finalizers)}: "
                    f"finalizer {_ORPHAN} and {_FOREGROUND} cannot be both set",
                )
            )
    return causes + _kube_finalizer_causes(resource, finalizers)


def _owner_causes(references: list[Any]) -> list[Cause]:
    causes: list[Cause] = []
    controller = ""
    field = "metadata.ownerReferences"
    for reference in references:
        reference = reference or {}
        api_version = reference.get("apiVersion") or ""
        kind = reference.get("kind") or ""
        version = api_version.rsplit("/", 1)[-1] if api_version.count("/") <= 1 else ""
        for key, value, empty in (
            ("apiVersion", api_version, not version),
            ("kind", kind, not kind),
            ("name", reference.get("name") or "", not reference.get("name")),
            ("uid", reference.get("uid") or "", not reference.get("uid")),
        ):
            if empty:
                what = "version" if key == "apiVersion" else key
                causes.append(
                    (f"{field}.{key}", f"Invalid value: {quote(value)}: {what} must not be empty")
                )
        if reference.get("controller"):
            current = f"{kind}/{reference.get('name') or ''}"
            if controller:
                causes.append(
                    (
                        field,
                        "Invalid value: []v1.OwnerReference{...}: Only one reference can have "
                        f'Controller set to true. Found "true" in references for {controller} '
                        f"and {current}",
                    )
                )
            else:
                controller = current
    return causes


def _metadata_types_error(resource: Resource, obj: Mapping[str, Any], *, typed: bool) -> str | None:
    """The 400 message of a create or update whose ``metadata`` has a field of a wrong type.

    ``'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal
    string into Go struct field ObjectMeta.metadata.labels of type map[string]string'``,
    or None when the types are right.
    """
    error = metadata_type_error(obj, resource.kind, typed=typed)
    if error is None:
        return None
    return cannot_handle(resource, obj, error)


def cannot_handle(resource: Resource, obj: Mapping[str, Any], error: str) -> str:
    """kube-apiserver's message for a body its decoder refused with ``error``.

    ``'Deployment in version "v1" cannot be handled as a Deployment: <error>'``, the body's
    own kind and version first.
    """
    given = obj.get("kind")
    api_version = obj.get("apiVersion")
    version = (api_version if isinstance(api_version, str) else "").rsplit("/", 1)[-1]
    return (
        f"{given if isinstance(given, str) and given else resource.kind} in version "
        f'"{version or resource.version}" cannot be handled as a {resource.kind}: {error}'
    )


_SCHEME = "pkg/api/legacyscheme/scheme.go:30"
"""The name kube-apiserver's scheme of built-in kinds goes by in its errors."""


def type_meta_error(obj: Mapping[str, Any]) -> str | None:
    """Go's error finding the kind of a body whose ``apiVersion`` or ``kind`` is no string."""
    for field_name in ("apiVersion", "kind"):
        value = obj.get(field_name)
        if value is not None and not isinstance(value, str):
            return (
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{json_kind(value)} into Go struct field .{field_name} of type string"
            )
    return None


def _other_kind_error(resource: Resource, obj: Mapping[str, Any]) -> str | None:
    """For a built-in kind: the message of a body of another kind or API version.

    ``'Pod in version "v1" cannot be handled as a ConfigMap: converting (v1.Pod) to
    (core.ConfigMap): unknown conversion'`` for a kind kube-apiserver knows (of those this
    server serves), ``no kind "Foo" is registered for version "v1" in scheme ...``
    otherwise; None for the resource's own kind and version (either may be left out).
    """
    error = type_meta_error(obj)
    if error is not None:
        return error
    kind = obj.get("kind") or resource.kind
    api_version = obj.get("apiVersion") or resource.api_version
    if (kind, api_version) == (resource.kind, resource.api_version):
        return None
    version = api_version.rsplit("/", 1)[-1]
    prefix = f'{kind} in version "{version}" cannot be handled as a {resource.kind}: '
    if not any(r.kind == kind and r.api_version == api_version for r in BUILTIN_RESOURCES):
        return (
            f'{prefix}no kind "{kind}" is registered for version "{api_version}" in scheme '
            f'"{_SCHEME}"'
        )
    internal = resource.group.split(".")[0] or "core"  # the Go package of internal types
    return (
        f"{prefix}converting ({version}.{kind}) to ({internal}.{resource.kind}): unknown conversion"
    )


def decoding_error(resource: Resource, obj: Mapping[str, Any], *, typed: bool) -> str | None:
    """The 400 message kube-apiserver's decoder gives a create or update body, or None.

    Args:
        resource: the resource written to.
        obj: the decoded body (``kind`` and ``apiVersion`` strings or absent).
        typed: a built-in kind, decoded into its Go struct: a body of another kind or
            version is refused, and metadata field paths start at ``metadata``.
    """
    error = _other_kind_error(resource, obj) if typed else _other_version_error(resource, obj)
    return error or _metadata_types_error(resource, obj, typed=typed)


def _other_version_error(resource: Resource, obj: Mapping[str, Any]) -> str | None:
    """For a custom resource: the conversion error of a body of another API version."""
    api_version = obj.get("apiVersion")
    if api_version in (None, "", resource.api_version):
        return None
    kind = obj.get("kind")
    return (
        f"{kind if isinstance(kind, str) and kind else resource.kind} in version "
        f'"{str(api_version).rsplit("/", 1)[-1]}" cannot be handled as a {resource.kind}: '
        f"request to convert CR from an invalid group/version: {api_version}"
    )
