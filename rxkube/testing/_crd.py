"""The CustomResourceDefinition API: definitions validated as kube-apiserver validates them,
and the resources they define served, versioned, validated and cleaned up.

``Definitions`` is the apiextensions-apiserver of one store. The definitions are stored
objects (``apiextensions.k8s.io/v1`` ``customresourcedefinitions``, cluster-scoped, with
a status); their admission follows ``pkg/apis/apiextensions/v1/defaults.go``,
``pkg/registry/customresourcedefinition/strategy.go`` and
``pkg/apis/apiextensions/validation/validation.go``. After each write of a definition,
``sync`` does at once what kube-apiserver's controllers do soon after: the naming
controller (``pkg/controller/status/naming_controller.go``: accepted names and the
``NamesAccepted`` condition), the establishing controller (``Established``), serving each
served version (``pkg/apiserver/customresource_handler.go``), and on deletion the
finalizer controller (``pkg/controller/finalizer/crd_finalizer.go``): every custom
resource is deleted, then the definition, and its resource is no longer served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .._apivalidation import dns1035_label as _dns1035
from .._apivalidation import dns1123_subdomain, quote
from ..resource import Resource
from . import _cel, _structural
from ._decode import stored_numbers, unstructured_numbers
from ._served import PrinterColumn, ScalePaths, ServedResource
from ._status import StatusError, invalid
from ._store import Store, now_timestamp
from ._stored import Object, WatchFilter, deep_copy
from ._validation import finalizer_warnings

log = logging.getLogger("rxkube.testing")

CRD_RESOURCE = Resource(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    False,
    ("crd", "crds"),
)
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_PRINTER_TYPES = ("boolean", "date", "integer", "number", "string")
_PRINTER_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
Cause = tuple[str, str]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _go_versions(versions: list[Any]) -> str:
    """``spec.versions`` as ``%#v`` starts printing the internal Go slice (abbreviated)."""
    if not versions:
        return "[]apiextensions.CustomResourceDefinitionVersion(nil)"
    inner = ", ".join(
        "apiextensions.CustomResourceDefinitionVersion{"
        f"Name:{quote(str(_dict(v).get('name') or ''))}, "
        f"Served:{'true' if _dict(v).get('served') else 'false'}, "
        f"Storage:{'true' if _dict(v).get('storage') else 'false'}, ...}}"
        for v in versions
    )
    return "[]apiextensions.CustomResourceDefinitionVersion{" + inner + "}"


# ---------------------------------------------------------------------- admission


def set_defaults(crd: Object) -> None:
    """The v1 defaults (``SetDefaults_CustomResourceDefinitionSpec``): singular, listKind,
    the ``None`` conversion strategy."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict):
        kind = names.get("kind")
        if isinstance(kind, str) and kind:
            names.setdefault("singular", kind.lower())
            names.setdefault("listKind", f"{kind}List")
    if not isinstance(spec.get("conversion"), dict):
        spec["conversion"] = {"strategy": "None"}


def _storage_version(spec: Mapping[str, Any]) -> str | None:
    for version in _list(spec.get("versions")):
        if _dict(version).get("storage") is True:
            return str(_dict(version).get("name") or "")
    return None


def _names_causes(names: Mapping[str, Any], path: str) -> list[Cause]:
    """``ValidateCustomResourceDefinitionNames``."""
    causes: list[Cause] = []
    for key, lower in (("plural", False), ("singular", False), ("kind", True), ("listKind", True)):
        value = names.get(key)
        if not isinstance(value, str) or not value:
            continue
        errors = _dns1035(value.lower() if lower else value)
        if errors:
            prefix = "may have mixed case, but should otherwise match: " if lower else ""
            causes.append(
                (f"{path}.{key}", f"Invalid value: {quote(value)}: {prefix}{','.join(errors)}")
            )
    for key in ("shortNames", "categories"):
        for index, value in enumerate(_list(names.get(key))):
            errors = _dns1035(str(value))
            if errors:
                causes.append(
                    (f"{path}.{key}[{index}]", f"Invalid value: {quote(value)}: {','.join(errors)}")
                )
    kind, list_kind = names.get("kind"), names.get("listKind")
    if kind and kind == list_kind:
        causes.append(
            (
                f"{path}.listKind",
                f"Invalid value: {quote(list_kind)}: kind and listKind may not be the same",
            )
        )
    return causes


def _simple_path_causes(value: str, path: str, under: tuple[str, ...], where: str) -> list[Cause]:
    if not value:
        return [(path, f"Invalid value: {quote(value)}: must not be empty")]
    if not value.startswith("."):
        return [
            (path, f"Invalid value: {quote(value)}: must be a simple json path starting with .")
        ]
    if not value.startswith(under):
        return [(path, f"Invalid value: {quote(value)}: should be a json path under {where}")]
    return []


def _printer_column(column: Mapping[str, Any]) -> PrinterColumn:
    """One of a version's ``additionalPrinterColumns``, already validated."""
    return PrinterColumn(
        name=str(column["name"]),
        type=str(column["type"]),
        json_path=str(column["jsonPath"]),
        format=str(column.get("format", "")),
        description=str(column.get("description", "")),
        priority=column["priority"] if isinstance(column.get("priority"), int) else 0,
    )


def _subresources_causes(subresources: Mapping[str, Any], path: str) -> list[Cause]:
    """``ValidateCustomResourceDefinitionSubresources``: the scale paths."""
    scale = subresources.get("scale")
    if not isinstance(scale, dict):
        return []
    causes: list[Cause] = []
    for key, under, where in (
        ("specReplicasPath", (".spec.",), ".spec"),
        ("statusReplicasPath", (".status.",), ".status"),
    ):
        value = scale.get(key)
        if not value:
            causes.append((f"{path}.scale.{key}", "Required value"))
        else:
            causes += _simple_path_causes(str(value), f"{path}.scale.{key}", under, where)
    selector = scale.get("labelSelectorPath")
    if selector:
        causes += _simple_path_causes(
            str(selector),
            f"{path}.scale.labelSelectorPath",
            (".spec.", ".status."),
            "either .spec or .status",
        )
    return causes


def _column_causes(column: Mapping[str, Any], path: str) -> list[Cause]:
    """``ValidateCustomResourceColumnDefinition``."""
    causes: list[Cause] = []
    if not column.get("name"):
        causes.append((f"{path}.name", "Required value"))
    kind = column.get("type")
    types = ",".join(_PRINTER_TYPES)
    if not kind:
        causes.append((f"{path}.type", f"Required value: must be one of {types}"))
    elif kind not in _PRINTER_TYPES:
        causes.append((f"{path}.type", f"Invalid value: {quote(kind)}: must be one of {types}"))
    fmt = column.get("format")
    if fmt and fmt not in _PRINTER_FORMATS:
        causes.append(
            (
                f"{path}.format",
                f"Invalid value: {quote(fmt)}: must be one of {','.join(_PRINTER_FORMATS)}",
            )
        )
    if not column.get("jsonPath"):
        causes.append((f"{path}.JSONPath", "Required value"))
    return causes


def _spec_causes(spec: Mapping[str, Any]) -> list[Cause]:
    """``validateCustomResourceDefinitionSpec`` for a v1 definition."""
    causes: list[Cause] = []
    group = spec.get("group")
    if not group:
        causes.append(("spec.group", "Required value"))
    else:
        errors = dns1123_subdomain(str(group))
        if errors:
            causes.append(("spec.group", f"Invalid value: {quote(group)}: {','.join(errors)}"))
        elif "." not in str(group):
            causes.append(
                (
                    "spec.group",
                    f"Invalid value: {quote(group)}: should be a domain with at least one dot",
                )
            )
    scope = spec.get("scope")
    if not scope:
        causes.append(("spec.scope", "Required value"))
    elif scope not in ("Cluster", "Namespaced"):
        causes.append(
            (
                "spec.scope",
                f'Unsupported value: {quote(scope)}: supported values: "Cluster", "Namespaced"',
            )
        )
    versions = _list(spec.get("versions"))
    seen: set[str] = set()
    unique = True
    storage = 0
    for index, version in enumerate(versions):
        version = _dict(version)
        path = f"spec.versions[{index}]"
        name = str(version.get("name") or "")
        unique = unique and name not in seen
        seen.add(name)
        storage += version.get("storage") is True
        errors = _dns1035(name)
        if errors:
            causes.append((f"{path}.name", f"Invalid value: {quote(name)}: {','.join(errors)}"))
        schema = _dict(version.get("schema")).get("openAPIV3Schema")
        subresources = _dict(version.get("subresources"))
        if schema is None:
            causes.append((f"{path}.schema.openAPIV3Schema", "Required value"))
        else:
            causes += _structural.schema_causes(
                schema,
                f"{path}.schema.openAPIV3Schema",
                status_subresource="status" in subresources,
            )
            causes += _cel.rule_causes(schema, f"{path}.schema.openAPIV3Schema")
        causes += _subresources_causes(subresources, f"{path}.subresources")
        for column_index, column in enumerate(_list(version.get("additionalPrinterColumns"))):
            causes += _column_causes(
                _dict(column), f"{path}.additionalPrinterColumns[{column_index}]"
            )
    if not unique:
        causes.append(
            (
                "spec.versions",
                f"Invalid value: {_go_versions(versions)}: must contain unique version names",
            )
        )
    if storage != 1:
        causes.append(
            (
                "spec.versions",
                f"Invalid value: {_go_versions(versions)}: must have exactly one version marked "
                "as storage version",
            )
        )
    names = _dict(spec.get("names"))
    for key in ("plural", "singular", "kind", "listKind"):
        if not names.get(key):
            causes.append((f"spec.names.{key}", "Required value"))
    causes += _names_causes(names, "spec.names")
    if spec.get("preserveUnknownFields") is True:
        causes.append(
            (
                "spec.preserveUnknownFields",
                "Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields "
                "to true in spec.versions[*].schema instead",
            )
        )
    strategy = _dict(spec.get("conversion")).get("strategy")
    if strategy not in ("None", "Webhook"):
        causes.append(
            (
                "spec.conversion.strategy",
                f'Unsupported value: {quote(strategy or "")}: supported values: "None", "Webhook"',
            )
        )
    elif strategy == "Webhook":
        causes.append(
            (
                "spec.conversion.strategy",
                'Unsupported value: "Webhook": this test server converts with the "None" '
                "strategy only",
            )
        )
    return causes


def _status_causes(crd: Mapping[str, Any]) -> list[Cause]:
    """``ValidateCustomResourceDefinitionStatus`` and ``...StoredVersions``."""
    spec, status = _dict(crd.get("spec")), _dict(crd.get("status"))
    causes = _names_causes(_dict(status.get("acceptedNames")), "status.acceptedNames")
    stored = _list(status.get("storedVersions"))
    path = "status.storedVersions"
    versions = {str(_dict(v).get("name")) for v in _list(spec.get("versions"))}
    storage = _storage_version(spec)
    if not stored:
        causes.append((path, "Invalid value: []string{}: must have at least one stored version"))
        return causes
    if storage is not None and storage not in stored:
        shown = "[]string{" + ", ".join(quote(str(v)) for v in stored) + "}"
        causes.append((path, f"Invalid value: {shown}: must have the storage version {storage}"))
    for index, version in enumerate(stored):
        if version not in versions:
            causes.append(
                (
                    f"{path}[{index}]",
                    f"Invalid value: {quote(version)}: missing from spec.versions; {version} was "
                    f"previously a storage version, and must remain in spec.versions until a "
                    f"storage migration ensures no data remains persisted in {version} and "
                    f"removes {version} from status.storedVersions",
                )
            )
    return causes


def _immutable(new: Any, old: Any, path: str) -> list[Cause]:
    if new == old:
        return []
    return [(path, f"Invalid value: {quote(new or '')}: field is immutable")]


def _condition(crd: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in _list(_dict(crd.get("status")).get("conditions")):
        if _dict(condition).get("type") == kind:
            return _dict(condition)
    return None


def _established(crd: Mapping[str, Any]) -> bool:
    found = _condition(crd, "Established")
    return found is not None and found.get("status") == "True"


# ------------------------------------------------------------------ custom objects


def _nested(obj: Any, path: str) -> tuple[Any, bool]:
    """The value at a dotted path (leading dot optional) and whether it is there."""
    for key in path.lstrip(".").split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None, False
        obj = obj[key]
    return obj, True


def _scale_causes(obj: Object, scale: ScalePaths) -> list[Cause]:
    """``customResourceValidator.ValidateScaleSpec`` and ``ValidateScaleStatus``, with
    ``unstructured.NestedInt64``'s and ``NestedString``'s accessor errors."""
    causes: list[Cause] = []
    for path in (scale.spec_replicas, scale.status_replicas):
        value, found = _nested(obj, path)
        shown = f".{path}"
        if not found:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            causes.append(
                (
                    shown,
                    f"Invalid value: 0: {shown} accessor error: {_go_plain(value)} is of the "
                    f"type {_go_type(value)}, expected int64",
                )
            )
        elif value < 0:
            causes.append((shown, f"Invalid value: {value}: should be a non-negative integer"))
        elif value > 2**31 - 1:
            causes.append(
                (shown, f"Invalid value: {value}: should be less than or equal to {2**31 - 1}")
            )
    if scale.selector is not None:
        value, found = _nested(obj, scale.selector)
        if found and not isinstance(value, str):
            causes.append(
                (
                    f".{scale.selector}",
                    f'Invalid value: "": .{scale.selector} accessor error: {_go_plain(value)} '
                    f"is of the type {_go_type(value)}, expected string",
                )
            )
    return causes


def _go_plain(value: Any) -> str:
    """A value as Go's ``%v`` prints it."""
    return value if isinstance(value, str) else _structural.go_value(value)


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return "<nil>"


class _CustomAdmission:
    """How objects of one served version are written: pruned, defaulted and validated.

    The order of kube-apiserver's decoding (numbers as ``util/json`` reads them, then
    ``unstructuredSchemaCoercer``: pruning, then dropping non-nullable nulls) then
    defaulting, then the custom resource validator (schema, then the scale replicas);
    last, the numbers as they read back from storage (JSON in etcd).
    """

    def __init__(
        self,
        resource: Resource,
        schema: Mapping[str, Any],
        scale: ScalePaths | None,
        terminating: Callable[[], bool],
    ) -> None:
        self.resource = resource
        self.schema = schema
        self.scale = scale
        self.terminating = terminating

    def __call__(self, new: Object, old: Object | None) -> Object:
        if old is None and self.terminating():
            # customresource_handler.go: forbidCreateAdmission while the definition goes.
            name = str(_dict(new.get("metadata")).get("name") or "")
            res = self.resource
            raise StatusError(
                403,
                f'{res.full_name} "{name}" is forbidden: create not allowed while custom '
                "resource definition is terminating",
                details={"name": name, "group": res.group, "kind": res.plural},
            )
        for key in new.keys() - {"metadata"}:
            new[key] = unstructured_numbers(new[key])
        _structural.prune(new, self.schema)
        _structural.drop_nulls(new, self.schema)
        _structural.default(new, self.schema)
        causes = _structural.validate(new, self.schema)
        # hasBlockingErr: a value of the wrong type leaves the rules unevaluated.
        if not any(" must be of type " in body for _, body in causes):
            causes += _cel.validate(new, old, self.schema)
        if self.scale is not None:
            causes += _scale_causes(new, self.scale)
        if causes:
            name = str(_dict(new.get("metadata")).get("name") or "")
            raise invalid(self.resource, name, causes)
        for key in new.keys() - {"metadata"}:
            new[key] = stored_numbers(new[key])
        return new


class _StorageDecoder:
    """How a definition's objects read back from storage: defaulted by the schema of the
    version each is stored in, as the storage codec of customresource_handler.go
    (``crdConversionRESTOptionsGetter``) runs ``unstructuredDefaulter`` on every decode,
    so an object stored before a default was added reads with it (what is stored stays).
    """

    def __init__(self, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        self.schemas = schemas
        """The schemas that set a default, by version."""

    def __call__(self, obj: Object) -> Object:
        schema = self.schemas.get(str(obj.get("apiVersion", "")).rpartition("/")[2])
        if schema is None:
            return obj
        read = deep_copy(obj)
        _structural.default(read, schema)
        if read == obj:
            return obj
        for key in read.keys() - {"metadata"}:
            read[key] = stored_numbers(read[key])
        return read


# -------------------------------------------------------------------- the controller


class Definitions:
    """The CustomResourceDefinition API of one store.

    Args:
        store: where definitions and custom resources are stored and served.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.served = ServedResource(
            CRD_RESOURCE,
            singular="customresourcedefinition",
            status_subresource=True,
            admit=self._admit,
            committed=self.sync,
            deleting=self._deleting,
        )
        """The ``customresourcedefinitions`` resource itself."""
        self._serving: dict[str, list[ServedResource]] = {}
        self._finalizing: set[str] = set()
        self._terminating: set[str] = set()

    # -------------------------------------------------------------- admission

    def _admit(self, new: Object, old: Object | None) -> Object:
        """Defaults, the create and update strategies' status rules, and validation."""
        set_defaults(new)
        spec = _dict(new.get("spec"))
        status = new.get("status")
        if not isinstance(status, dict):
            status = new["status"] = {}
        status.setdefault("acceptedNames", {"plural": "", "kind": ""})
        stored = status.setdefault("storedVersions", [])
        storage = _storage_version(spec)
        if storage and storage not in stored:
            stored.append(storage)
        meta = _dict(new.get("metadata"))
        name = str(meta.get("name") or "")
        causes: list[Cause] = []
        names = _dict(spec.get("names"))
        if old is None and name != f"{names.get('plural', '')}.{spec.get('group', '')}":
            causes.append(
                (
                    "metadata.name",
                    f'Invalid value: {quote(name)}: must be spec.names.plural+"."+spec.group',
                )
            )
        causes += _spec_causes(spec)
        if old is not None:
            old_spec = _dict(old.get("spec"))
            old_names = _dict(old_spec.get("names"))
            if _established(old):
                causes += _immutable(spec.get("scope"), old_spec.get("scope"), "spec.scope")
                causes += _immutable(names.get("kind"), old_names.get("kind"), "spec.names.kind")
            causes += _immutable(spec.get("group"), old_spec.get("group"), "spec.group")
            causes += _immutable(names.get("plural"), old_names.get("plural"), "spec.names.plural")
        causes += _status_causes(new)
        if causes:
            raise invalid(CRD_RESOURCE, name, causes)
        return new

    @staticmethod
    def _deleting(crd: Object) -> Object:
        """A delete marks the definition: the cleanup finalizer and ``Terminating``
        (``pkg/registry/customresourcedefinition/etcd.go``, ``REST.Delete``)."""
        meta = crd["metadata"]
        finalizers = list(meta.get("finalizers") or ())
        if CLEANUP_FINALIZER not in finalizers:
            meta["finalizers"] = [*finalizers, CLEANUP_FINALIZER]
        crd["status"] = _set_condition(
            _dict(crd.get("status")),
            {
                "type": "Terminating",
                "status": "True",
                "reason": "InstanceDeletionPending",
                "message": "CustomResourceDefinition marked for deletion; CustomResource "
                "deletion will begin soon",
            },
        )
        return crd

    # ------------------------------------------------------------------- sync

    def sync(self, name: str) -> None:
        """Bring what is served in line with definition ``name`` (after each of its writes)."""
        try:
            self._sync(name)
        except StatusError as exc:
            # A concurrent write got there first: its own sync follows.
            log.debug("rxkube test API server: syncing %s: %s", name, str(exc))

    def _current(self, name: str) -> Object | None:
        try:
            return self.store.get(self.served, None, name).copy_obj()
        except StatusError:
            return None

    def _sync(self, name: str) -> None:
        crd = self._current(name)
        if crd is None:
            self._terminating.discard(name)
            for served in self._serving.pop(name, []):
                self.store.remove_resource(served)
            return
        if crd["metadata"].get("deletionTimestamp"):
            self._terminating.add(name)
            self._finalize(name, crd)
            return
        status = _dict(crd.get("status"))
        accepted, names_condition = self._accepted_names(crd)
        conditions = _set_condition(status, names_condition)
        if names_condition["status"] == "True":
            self._serve(name, crd, accepted)
            conditions = _set_condition(
                conditions,
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            )
        elif not _established(crd):
            conditions = _set_condition(
                conditions,
                {
                    "type": "Established",
                    "status": "False",
                    "reason": "NotAccepted",
                    "message": "not all names are accepted",
                },
            )
        new_status = {**status, **conditions, "acceptedNames": accepted}
        if new_status != status:
            crd["status"] = new_status
            self.store.update(self.served, None, name, crd, subresource="status", via_http=False)

    def _accepted_names(self, crd: Object) -> tuple[dict[str, Any], dict[str, Any]]:
        """The naming controller: the names other definitions of the group have not taken."""
        spec = _dict(crd.get("spec"))
        requested = _dict(spec.get("names"))
        accepted = dict(_dict(_dict(crd.get("status")).get("acceptedNames")))
        resources: set[str] = set()
        kinds: set[str] = set()
        for other in self.store.list(self.served, WatchFilter()).items:
            other_obj = other.obj
            if other_obj["metadata"]["name"] == crd["metadata"]["name"]:
                continue
            if _dict(other_obj.get("spec")).get("group") != spec.get("group"):
                continue
            taken = _dict(_dict(other_obj.get("status")).get("acceptedNames"))
            named = [taken.get("plural"), taken.get("singular"), *(taken.get("shortNames") or ())]
            resources.update(str(n) for n in named if n)
            kinds.update(str(n) for n in (taken.get("kind"), taken.get("listKind")) if n)
        condition: dict[str, Any] = {"type": "NamesAccepted", "status": "True"}

        def claim(key: str, used: set[str], reason: str) -> None:
            wanted = requested.get(key)
            if wanted != accepted.get(key) and wanted in used:
                condition.update(
                    status="False", reason=reason, message=f"{quote(wanted)} is already in use"
                )
            elif wanted is not None:
                accepted[key] = wanted

        claim("plural", resources, "PluralConflict")
        claim("singular", resources, "SingularConflict")
        short = list(requested.get("shortNames") or ())
        if short != list(accepted.get("shortNames") or ()):
            mine = set(accepted.get("shortNames") or ())
            clashes = [s for s in short if s not in mine and s in resources]
            if clashes:
                messages = [f"{quote(s)} is already in use" for s in clashes]
                text = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
                condition.update(status="False", reason="ShortNamesConflict", message=text)
            elif short:
                accepted["shortNames"] = short
            else:
                accepted.pop("shortNames", None)
        claim("kind", kinds, "KindConflict")
        claim("listKind", kinds, "ListKindConflict")
        if requested.get("categories"):
            accepted["categories"] = list(requested["categories"])
        else:
            accepted.pop("categories", None)
        if condition["status"] == "True":
            condition.update(reason="NoConflicts", message="no conflicts found")
        order = ("plural", "singular", "shortNames", "kind", "listKind", "categories")
        return {k: accepted[k] for k in order if k in accepted}, condition

    def _serve(self, name: str, crd: Object, accepted: Mapping[str, Any]) -> None:
        """Serve every served version of a definition; stop serving the others."""
        spec = _dict(crd.get("spec"))
        storage = _storage_version(spec)
        schemas: dict[str, Mapping[str, Any]] = {}
        for version in map(_dict, _list(spec.get("versions"))):
            schema = _dict(_dict(version.get("schema")).get("openAPIV3Schema"))
            if _structural.has_defaults(schema):
                schemas[str(version.get("name"))] = schema
        decode = _StorageDecoder(schemas) if schemas else None
        wanted: list[ServedResource] = []
        for version in _list(spec.get("versions")):
            version = _dict(version)
            if version.get("served") is not True:
                continue
            wanted.append(self._version(name, spec, accepted, version, storage, decode))
        wanted_keys = {(s.resource.version) for s in wanted}
        for served in self._serving.get(name, []):
            if served.resource.version not in wanted_keys:
                self.store.remove_resource(served)
        for served in sorted(wanted, key=lambda s: s.resource.version != storage):
            self.store.serve(served)
        self._serving[name] = wanted

    def _version(
        self,
        name: str,
        spec: Mapping[str, Any],
        accepted: Mapping[str, Any],
        version: Mapping[str, Any],
        storage: str | None,
        decode: _StorageDecoder | None,
    ) -> ServedResource:
        resource = Resource(
            str(spec.get("group")),
            str(version.get("name")),
            str(accepted.get("kind")),
            str(accepted.get("plural")),
            spec.get("scope") == "Namespaced",
            tuple(str(s) for s in accepted.get("shortNames") or ()),
        )
        subresources = _dict(version.get("subresources"))
        scale_spec = subresources.get("scale")
        scale = None
        if isinstance(scale_spec, dict):
            selector = scale_spec.get("labelSelectorPath")
            scale = ScalePaths(
                str(scale_spec.get("specReplicasPath", "")).lstrip("."),
                str(scale_spec.get("statusReplicasPath", "")).lstrip("."),
                str(selector).lstrip(".") if selector else None,
                "string",
            )
        schema = _dict(_dict(version.get("schema")).get("openAPIV3Schema"))
        return ServedResource(
            resource,
            singular=str(accepted.get("singular") or resource.kind.lower()),
            status_subresource="status" in subresources,
            fields=frozenset(
                str(_dict(f).get("jsonPath", "")).lstrip(".")
                for f in _list(version.get("selectableFields"))
            ),
            strategic_merge=False,
            unconditional_update=False,
            scale=scale,
            openapi_schema=schema,
            printer_columns=tuple(
                _printer_column(_dict(c)) for c in _list(version.get("additionalPrinterColumns"))
            ),
            storage_version=storage,
            definition=name,
            admit=_CustomAdmission(resource, schema, scale, lambda: name in self._terminating),
            decode=decode,
            warn=finalizer_warnings,
            committed=lambda _object: self._on_custom_write(name),
        )

    def _on_custom_write(self, name: str) -> None:
        """A custom resource of a terminating definition changed: it may be the last one."""
        crd = self._current(name)
        if crd is not None and crd["metadata"].get("deletionTimestamp"):
            self._finalize(name, crd)

    def _finalize(self, name: str, crd: Object) -> None:
        """The finalizer controller: delete every custom resource, then the definition."""
        if name in self._finalizing:
            return  # a deletion below set this off; the loop running already goes on
        self._finalizing.add(name)
        try:
            self._finalize_once(name, crd)
        finally:
            self._finalizing.discard(name)

    def _finalize_once(self, name: str, crd: Object) -> None:
        serving = self._serving.get(name, [])
        storage = next(
            (s for s in serving if s.storage_version in (None, s.resource.version)), None
        )
        remaining = 0
        if storage is not None:
            for stored in self.store.list(storage, WatchFilter()).items:
                meta = stored.obj["metadata"]
                if meta.get("deletionTimestamp"):
                    remaining += 1
                    continue
                try:
                    _, gone = self.store.delete(storage, meta.get("namespace"), meta["name"])
                except StatusError:
                    continue
                remaining += not gone
        if remaining:
            status = _dict(crd.get("status"))
            conditions = _set_condition(
                status,
                {
                    "type": "Terminating",
                    "status": "True",
                    "reason": "InstanceDeletionInProgress",
                    "message": "CustomResource deletion is in progress",
                },
            )
            if {**status, **conditions} != status:
                crd["status"] = {**status, **conditions}
                self.store.update(
                    self.served, None, name, crd, subresource="status", via_http=False
                )
            return
        for served in self._serving.pop(name, []):
            self.store.remove_resource(served)
        crd["metadata"]["finalizers"] = [
            f for f in crd["metadata"].get("finalizers") or () if f != CLEANUP_FINALIZER
        ]
        self.store.update(self.served, None, name, crd, via_http=False)


def _set_condition(status: Mapping[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
    """``{"conditions": [...]}`` with ``condition`` set, as ``SetCRDCondition`` does: the
    transition time moves only when the status changes."""
    conditions = [dict(c) for c in _list(status.get("conditions")) if isinstance(c, dict)]
    for existing in conditions:
        if existing.get("type") == condition["type"]:
            if existing.get("status") != condition["status"]:
                existing["lastTransitionTime"] = now_timestamp()
            existing.update(
                status=condition["status"],
                reason=condition.get("reason", ""),
                message=condition.get("message", ""),
            )
            break
    else:
        conditions.append(
            {
                "type": condition["type"],
                "status": condition["status"],
                "lastTransitionTime": now_timestamp(),
                "reason": condition.get("reason", ""),
                "message": condition.get("message", ""),
            }
        )
    return {"conditions": conditions}
