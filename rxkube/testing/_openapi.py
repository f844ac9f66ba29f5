"""The OpenAPI documents of the served resources: ``/openapi/v2`` and ``/openapi/v3``.

kube-apiserver publishes the schema of every kind it serves, and clients depend on it:
kubectl downloads ``/openapi/v3`` before ``apply -f`` and ``create -f`` to learn whether
the server validates fields itself (a ``fieldValidation`` parameter on the kind's PATCH
operation), and ``kubectl explain`` reads the schemas. The definitions of the built-in
kinds are Kubernetes v1.32's, shipped compressed in ``openapi-definitions.json.gz`` (the
generally available kinds and what they refer to; ``tools/openapi_definitions.py``
regenerates it, and says why that subset). A custom resource is published with the
schema its :class:`~rxkube.testing._served.ServedResource` carries
(``openapi_schema``), or as an object that keeps any field when it has none.

The paths are generated for the served resources, as kube-apiserver's builder does
(operation ids such as ``patchAppsV1NamespacedDeployment``, the
``x-kubernetes-group-version-kind`` and ``x-kubernetes-action`` extensions, the query
parameters of each verb); watch paths (deprecated) are left out.
"""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ._served import ServedResource

Schema = dict[str, Any]

_TITLE = "Kubernetes"
_VERSION = "v1.32.0"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."


@functools.cache
def definitions() -> Mapping[str, Schema]:
    """The built-in definitions, in swagger 2.0 form (``#/definitions/`` refs), by name."""
    data = importlib.resources.files(__package__).joinpath("openapi-definitions.json.gz")
    loaded: dict[str, Schema] = orjson.loads(gzip.decompress(data.read_bytes()))
    return loaded


@functools.cache
def _builtin_names() -> Mapping[tuple[str, str, str], str]:
    names: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            names.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return names


def builtin_definition(group: str, version: str, kind: str) -> str | None:
    """The definition name of a built-in kind (``io.k8s.api.apps.v1.Deployment``), or None."""
    return _builtin_names().get((group, version, kind))


def _custom_prefix(served: ServedResource) -> str:
    """kube-apiserver names a custom kind's definitions by its reversed group: ``com.example.v1.``."""
    res = served.resource
    return ".".join(reversed(res.group.split("."))) + f".{res.version}."


_STANDARD = {
    "apiVersion": {
        "description": "APIVersion defines the versioned schema of this representation of an "
        "object. Servers should convert recognized schemas to the latest internal value, and "
        "may reject unrecognized values. More info: https://git.k8s.io/community/contributors/"
        "devel/sig-architecture/api-conventions.md#resources",
        "type": "string",
    },
    "kind": {
        "description": "Kind is a string value representing the REST resource this object "
        "represents. Servers may infer this from the endpoint the client submits requests to. "
        "Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/"
        "devel/sig-architecture/api-conventions.md#types-kinds",
        "type": "string",
    },
}


def _custom_definitions(served: ServedResource) -> dict[str, Schema]:
    """The definitions of a custom kind and its list, as the CRD OpenAPI builder publishes them."""
    res = served.resource
    prefix = _custom_prefix(served)
    given = copy.deepcopy(dict(served.openapi_schema or {}))
    if not given:
        given = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    properties = dict(given.get("properties") or {})
    properties.update(copy.deepcopy(_STANDARD))
    properties["metadata"] = {
        "description": "Standard object's metadata. More info: https://git.k8s.io/community/"
        "contributors/devel/sig-architecture/api-conventions.md#metadata",
        "$ref": f"#/definitions/{_META}ObjectMeta",
    }
    given["properties"] = properties
    given.setdefault("type", "object")
    gvk = [{"group": res.group, "kind": res.kind, "version": res.version}]
    given["x-kubernetes-group-version-kind"] = gvk
    listed = {
        "description": f"{res.kind}List is a list of {res.kind}",
        "required": ["items"],
        "type": "object",
        "properties": {
            **copy.deepcopy(_STANDARD),
            "items": {
                "description": "List of "
                + res.plural
                + ". More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                "type": "array",
                "items": {"$ref": f"#/definitions/{prefix}{res.kind}"},
            },
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/"
                "contributors/devel/sig-architecture/api-conventions.md#metadata",
                "$ref": f"#/definitions/{_META}ListMeta",
            },
        },
        "x-kubernetes-group-version-kind": [{**gvk[0], "kind": f"{res.kind}List"}],
    }
    return {f"{prefix}{res.kind}": given, f"{prefix}{res.kind}List": listed}


def kind_schema(served: ServedResource) -> tuple[str, Mapping[str, Schema]] | None:
    """The definition name of a served kind and the definitions its refs resolve in.

    None for a built-in kind whose schema is not shipped (a kind a test added by hand).
    """
    res = served.resource
    if served.strategic_merge:
        name = builtin_definition(res.group, res.version, res.kind)
        return None if name is None else (name, definitions())
    custom = _custom_definitions(served)
    return f"{_custom_prefix(served)}{res.kind}", {**definitions(), **custom}


def reachable(roots: list[str], defs: Mapping[str, Schema]) -> list[str]:
    """The definitions ``roots`` refer to, directly or not, themselves included, sorted
    (also what ``tools/openapi_definitions.py`` keeps of the published ones)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        _collect_refs(defs[name], todo)
    return sorted(seen)


def _collect_refs(node: Any, into: list[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            into.append(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _collect_refs(value, into)
    elif isinstance(node, list):
        for value in node:
            _collect_refs(value, into)


# ---------------------------------------------------------------- operations

_QUERY: dict[str, tuple[str, str]] = {
    "allowWatchBookmarks": (
        "boolean",
        'allowWatchBookmarks requests watch events with type "BOOKMARK". Servers that do not '
        "implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion.",
    ),
    "continue": (
        "string",
        "The continue option should be set when retrieving more results from the server.",
    ),
    "dryRun": (
        "string",
        "When present, indicates that modifications should not be persisted. An invalid or "
        "unrecognized dryRun directive will result in an error response and no further "
        "processing of the request. Valid values are: - All: all dry run stages will be processed",
    ),
    "fieldManager": (
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    ),
    "fieldSelector": (
        "string",
        "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
    ),
    "fieldValidation": (
        "string",
        "fieldValidation instructs the server on how to handle objects in the request "
        "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: "
        "This will ignore any unknown fields that are silently dropped from the object, and will "
        "ignore all but the last duplicate field that the decoder encounters. This is the default "
        "behavior prior to v1.23. - Warn: This will send a warning via the standard warning "
        "response header for each unknown field that is dropped from the object, and for each "
        "duplicate field that is encountered. The request will still succeed if there are no "
        "other errors, and will only persist the last of any duplicate fields. This is the "
        "default in v1.23+ - Strict: This will fail the request with a BadRequest error if any "
        "unknown fields would be dropped from the object, or if any duplicate fields are present. "
        "The error returned from the server will contain all unknown and duplicate fields "
        "encountered.",
    ),
    "force": (
        "boolean",
        'Force is going to "force" Apply requests. It means user will re-acquire conflicting '
        "fields owned by other people. Force flag must be unset for non-apply patch requests.",
    ),
    "gracePeriodSeconds": (
        "integer",
        "The duration in seconds before the object should be deleted.",
    ),
    "labelSelector": (
        "string",
        "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    ),
    "limit": ("integer", "limit is a maximum number of responses to return for a list call."),
    "orphanDependents": (
        "boolean",
        "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7.",
    ),
    "propagationPolicy": (
        "string",
        "Whether and how garbage collection will be performed. Acceptable values are: "
        "'Orphan', 'Background', 'Foreground'.",
    ),
    "resourceVersion": (
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be served from.",
    ),
    "resourceVersionMatch": (
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls.",
    ),
    "sendInitialEvents": (
        "boolean",
        "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the "
        "watch stream will begin with synthetic events to produce the current state of objects "
        "in the collection.",
    ),
    "timeoutSeconds": (
        "integer",
        "Timeout for the list/watch call. This limits the duration of the call, regardless of "
        "any activity or inactivity.",
    ),
    "watch": (
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, "
        "update, and remove notifications. Specify resourceVersion.",
    ),
}
_LIST = [
    "allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
    "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch",
]  # fmt: skip
_WRITE = ["dryRun", "fieldManager", "fieldValidation"]
_DELETE = ["dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy"]
_PATCH_TYPES = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
]
_RESPONSE_TYPES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]


@dataclass(frozen=True, slots=True)
class _Operation:
    method: str
    verb: str  # operationId prefix
    action: str  # x-kubernetes-action
    query: list[str]
    body: str | None  # definition name of the body
    response: str  # definition name of the 200 answer
    created: bool = False  # answers 201 (and 202) besides 200


def _camel(group: str) -> str:
    """A group as operation ids spell it: ``Core``, ``Apps``, ``RbacAuthorization``,
    and a custom group reversed (``example.com``: ``ComExample``)."""
    if not group:
        return "Core"
    parts = group.removesuffix(".k8s.io").split(".")
    if not group.endswith(".k8s.io") and len(parts) > 1:
        parts.reverse()
    return "".join(part[:1].upper() + part[1:] for part in parts)


def _parameter(name: str, where: str = "query") -> dict[str, Any]:
    if where == "path":
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": f"name of the {name}" if name == "name" else
            "object name and auth scope, such as for teams and projects",
            "type": "string",
            "uniqueItems": True,
        }  # fmt: skip
    kind, description = _QUERY[name]
    return {
        "name": name,
        "in": "query",
        "description": description,
        "type": kind,
        "uniqueItems": True,
    }


def _paths(served: ServedResource, kind_ref: str, list_ref: str) -> dict[str, dict[str, Any]]:
    """Every path of one resource, with its operations, in swagger 2.0 form."""
    res = served.resource
    prefix = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    gv = f"{_camel(res.group)}{res.version[:1].upper()}{res.version[1:]}"
    scope = "Namespaced" if res.namespaced else ""
    base = (
        f"{prefix}/namespaces/{{namespace}}/{res.plural}"
        if res.namespaced
        else f"{prefix}/{res.plural}"
    )
    status = f"{_META}Status"
    patch = f"{_META}Patch"
    delete_options = f"{_META}DeleteOptions"
    gvk = {"group": res.group, "kind": res.kind, "version": res.version}
    collection = [
        _Operation("get", f"list{gv}{scope}{res.kind}", "list", _LIST, None, list_ref),
        _Operation("post", f"create{gv}{scope}{res.kind}", "post", _WRITE, kind_ref, kind_ref, True),
        _Operation(
            "delete", f"delete{gv}Collection{scope}{res.kind}", "deletecollection",
            sorted(set(_LIST + _DELETE)), delete_options, status,
        ),
    ]  # fmt: skip
    item = [
        _Operation("get", f"read{gv}{scope}{res.kind}", "get", [], None, kind_ref),
        _Operation("put", f"replace{gv}{scope}{res.kind}", "put", _WRITE, kind_ref, kind_ref, True),
        _Operation(
            "delete", f"delete{gv}{scope}{res.kind}", "delete", _DELETE, delete_options,
            kind_ref if served.returns_deleted_object else status,
        ),
        _Operation(
            "patch", f"patch{gv}{scope}{res.kind}", "patch", [*_WRITE, "force"], patch, kind_ref, True
        ),
    ]  # fmt: skip
    path_params = [_parameter("namespace", "path")] if res.namespaced else []
    paths: dict[str, dict[str, Any]] = {
        base: _path_item(collection, res.kind, gvk, path_params, res.plural),
        f"{base}/{{name}}": _path_item(
            item, res.kind, gvk, [_parameter("name", "path"), *path_params], res.plural
        ),
    }
    if served.status_subresource:
        status_ops = [
            _Operation(
                o.method, o.verb + "Status", o.action, o.query, o.body, o.response, o.created
            )
            for o in item
            if o.method != "delete"
        ]
        paths[f"{base}/{{name}}/status"] = _path_item(
            status_ops, res.kind, gvk, [_parameter("name", "path"), *path_params], res.plural
        )
    if res.namespaced:
        everywhere = _Operation(
            "get", f"list{gv}{res.kind}ForAllNamespaces", "list", _LIST, None, list_ref
        )
        paths[f"{prefix}/{res.plural}"] = _path_item([everywhere], res.kind, gvk, [], res.plural)
    if not served.strategic_merge:
        # apiextensions-apiserver's openapi builder (builder.go): a custom resource takes
        # JSON, merge and apply patches, no strategic merge; kubectl then sends merge patches.
        for path_item in paths.values():
            if "patch" in path_item:
                path_item["patch"]["consumes"] = [t for t in _PATCH_TYPES if "strategic" not in t]
    return paths


def _path_item(
    operations: list[_Operation],
    kind: str,
    gvk: dict[str, str],
    path_params: list[dict[str, Any]],
    plural: str,
) -> dict[str, Any]:
    item: dict[str, Any] = {}
    tag = (
        gvk["group"].split(".")[0] + "_" + gvk["version"]
        if gvk["group"]
        else f"core_{gvk['version']}"
    )
    for op in operations:
        parameters = [_parameter(name) for name in op.query]
        if op.body is not None:
            parameters.insert(
                0,
                {
                    "name": "body",
                    "in": "body",
                    "required": op.method != "delete",
                    "schema": {"$ref": f"#/definitions/{op.body}"},
                },
            )
        responses: dict[str, Any] = {
            "200": {"description": "OK", "schema": {"$ref": f"#/definitions/{op.response}"}},
            "401": {"description": "Unauthorized"},
        }
        if op.created:
            responses["201"] = {
                "description": "Created",
                "schema": {"$ref": f"#/definitions/{op.response}"},
            }
        operation: dict[str, Any] = {
            "description": f"{op.action} {plural}"
            if op.action != "get"
            else f"read the specified {kind}",
            "operationId": op.verb,
            "consumes": _PATCH_TYPES if op.method == "patch" else ["*/*"],
            "produces": _RESPONSE_TYPES,
            "schemes": ["https"],
            "tags": [tag],
            "parameters": parameters,
            "responses": responses,
            "x-kubernetes-action": op.action,
            "x-kubernetes-group-version-kind": gvk,
        }
        item[op.method] = operation
    item["parameters"] = [
        *path_params,
        {
            "name": "pretty",
            "in": "query",
            "description": "If 'true', then the output is pretty printed.",
            "type": "string",
            "uniqueItems": True,
        },
    ]
    return item


# ---------------------------------------------------------------- documents


def _group_version_path(served: ServedResource) -> str:
    res = served.resource
    return f"apis/{res.group}/{res.version}" if res.group else f"api/{res.version}"


@dataclass(frozen=True, slots=True)
class _Parts:
    paths: dict[str, dict[str, Any]]
    definitions: dict[str, Schema]


def _parts(served: list[ServedResource]) -> _Parts:
    paths: dict[str, dict[str, Any]] = {}
    defs: dict[str, Schema] = {}
    roots = [f"{_META}{name}" for name in ("Status", "Patch", "DeleteOptions", "WatchEvent")]
    for item in served:
        found = kind_schema(item)
        if found is None:
            continue
        name, resolved = found
        list_name = f"{name}List"
        defs.update((n, resolved[n]) for n in (name, list_name) if n in resolved)
        roots.extend((name, list_name))
        paths.update(_paths(item, name, list_name if list_name in resolved else name))
    builtin = definitions()
    for name in reachable(roots, {**builtin, **defs}):
        if name not in defs:
            defs[name] = builtin[name]
    return _Parts(dict(sorted(paths.items())), dict(sorted(defs.items())))


def swagger_v2(served: list[ServedResource]) -> dict[str, Any]:
    """The ``/openapi/v2`` document (swagger 2.0) of the served resources."""
    parts = _parts(served)
    return {
        "swagger": "2.0",
        "info": {"title": _TITLE, "version": _VERSION},
        "paths": parts.paths,
        "definitions": parts.definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "type": "apiKey",
                "name": "authorization",
                "in": "header",
            }
        },
        "security": [{"BearerToken": []}],
    }


def _v3_schema(node: Any) -> Any:
    """A swagger 2.0 schema node in OpenAPI v3 form: component refs, and a ref with siblings
    (a description) wrapped in ``allOf``, as kube-openapi's v3 builder writes it."""
    if isinstance(node, list):
        return [_v3_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _v3_schema(value) for key, value in node.items() if key != "$ref"}
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = ref.replace("#/definitions/", "#/components/schemas/")
        if out:
            out["allOf"] = [{"$ref": target}]
        else:
            out["$ref"] = target
    return out


def _v3_operation(operation: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: v
        for k, v in operation.items()
        if k not in ("consumes", "produces", "schemes", "parameters", "responses")
    }
    parameters = []
    for parameter in operation["parameters"]:
        if parameter["in"] == "body":
            out["requestBody"] = {
                "content": {
                    media: {"schema": _v3_schema(parameter["schema"])}
                    for media in (
                        operation["consumes"] if operation["consumes"] != ["*/*"] else ["*/*"]
                    )
                },
                "required": parameter["required"],
            }
            continue
        parameters.append(_v3_parameter(parameter))
    if parameters:
        out["parameters"] = parameters
    responses = {}
    for code, response in operation["responses"].items():
        answer: dict[str, Any] = {"description": response["description"]}
        if "schema" in response:
            schema = _v3_schema(response["schema"])
            answer["content"] = {media: {"schema": schema} for media in operation["produces"]}
        responses[code] = answer
    out["responses"] = responses
    return out


def _v3_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in parameter.items() if k not in ("type",)}
    out["schema"] = {"type": parameter["type"], "uniqueItems": True}
    out.pop("uniqueItems", None)
    return out


def _v3_document(parts: _Parts) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, item in parts.paths.items():
        converted: dict[str, Any] = {}
        for key, value in item.items():
            if key == "parameters":
                converted[key] = [_v3_parameter(p) for p in value]
            else:
                converted[key] = _v3_operation(value)
        paths[path] = converted
    return {
        "openapi": "3.0.0",
        "info": {"title": _TITLE, "version": _VERSION},
        "paths": paths,
        "components": {
            "schemas": {name: _v3_schema(schema) for name, schema in parts.definitions.items()},
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                }
            },
        },
    }


class OpenApiDocuments:
    """The OpenAPI documents of a set of served resources, encoded once.

    Args:
        served: the resources the server serves right now.
    """

    def __init__(self, served: list[ServedResource]) -> None:
        self._served = served
        self._v2: bytes | None = None
        self._v3: dict[str, bytes] | None = None

    def v2(self) -> bytes:
        """The encoded ``/openapi/v2`` document."""
        if self._v2 is None:
            self._v2 = orjson.dumps(swagger_v2(self._served))
        return self._v2

    def _group_versions(self) -> dict[str, bytes]:
        if self._v3 is None:
            by_path: dict[str, list[ServedResource]] = {}
            for item in self._served:
                by_path.setdefault(_group_version_path(item), []).append(item)
            self._v3 = {
                path: orjson.dumps(_v3_document(_parts(items)))
                for path, items in sorted(by_path.items())
            }
        return self._v3

    def v3_root(self) -> bytes:
        """The ``/openapi/v3`` discovery document: each group-version's path with its hash."""
        paths = {
            path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={etag(body)}"}
            for path, body in self._group_versions().items()
        }
        return orjson.dumps({"paths": paths})

    def v3(self, path: str) -> bytes | None:
        """The encoded document of one group-version (``apis/apps/v1``), or None."""
        return self._group_versions().get(path)


def etag(body: bytes) -> str:
    """kube-openapi's ETag and ``hash`` of a document: its SHA-512, upper-case hex."""
    return hashlib.sha512(body).hexdigest().upper()
