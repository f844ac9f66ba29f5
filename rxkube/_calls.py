"""What each ``Api`` method asks the API server, written once for the blocking and the async Api.

Every CRUD method is a *plan*: a generator that yields the :class:`Call` to make next and
receives its decoded answer (or has the typed error thrown into it), returning the
method's result. ``Api`` drives plans over ``Client.request``, ``AsyncApi`` over aiohttp;
paths, parameters, validation and paging exist only here (the sans-I/O idea of the
protocol core, applied to CRUD).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from .errors import DecodeError, Gone
from .resource import Resource, check_path_segment

__all__ = [
    "ApiCalls",
    "Call",
    "JsonPatch",
    "PatchType",
    "Plan",
    "check_namespace",
    "decode_object",
]

ACCEPT_METADATA_LIST = (
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
)
"""Accept header asking for a list of objects reduced to their metadata."""

ACCEPT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
"""Accept header asking for one object (or each watch event's object) reduced to its metadata."""

PatchType = Literal["merge", "json", "strategic", "apply"]
JsonPatch = list[dict[str, Any]]
"""An RFC 6902 JSON patch: a list of operations."""

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True, slots=True)
class Call:
    """One request of a plan: the body is a JSON value, encoded by the driver."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    body: Any = None
    content_type: str = "application/json"
    accept: str | None = None


Plan: TypeAlias = Generator[Call, dict[str, Any], dict[str, Any]]
"""Yields calls, receives each one's decoded JSON object, returns the method's result."""


def decode_object(decoded: Any, request: str) -> dict[str, Any]:
    """The answer of a CRUD call, which must be a JSON object."""
    if not isinstance(decoded, dict):
        raise DecodeError(f"{request}: expected a JSON object, got {type(decoded).__name__}")
    return decoded


def check_namespace(owner: str, namespace: object) -> str | None:
    """An Api's default namespace, checked when the Api is made rather than at its first
    request (a watcher's list would fail on its own thread).

    Raises:
        TypeError: neither a string nor ``None``.
        ValueError: it cannot be a path segment (``..`` would widen a list to every
            namespace).
    """
    if namespace is None:
        return None
    if not isinstance(namespace, str):
        raise TypeError(f"{owner}(): namespace must be a string or None, not {namespace!r:.60}")
    return check_path_segment("namespace", namespace)


def drive(plan: Plan, send: Callable[[Call], dict[str, Any]]) -> dict[str, Any]:
    """Run a plan with a blocking ``send``; errors from ``send`` are thrown into the plan."""
    try:
        call = next(plan)
        while True:
            try:
                answer = send(call)
            except Exception as exc:
                call = plan.throw(exc)
            else:
                call = plan.send(answer)
    except StopIteration as done:
        result: dict[str, Any] = done.value
        return result


async def drive_async(
    plan: Plan, send: Callable[[Call], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Run a plan with a coroutine ``send``; as :func:`drive`."""
    try:
        call = next(plan)
        while True:
            try:
                answer = await send(call)
            except Exception as exc:
                call = plan.throw(exc)
            else:
                call = plan.send(answer)
    except StopIteration as done:
        result: dict[str, Any] = done.value
        return result


class ApiCalls:
    """The resource and namespace an Api addresses, and the plan of each of its methods."""

    resource: Resource
    namespace: str | None

    def _object_namespace(
        self, namespace: str | None, obj: Mapping[str, Any] | None = None
    ) -> str | None:
        """The namespace a request about ``obj`` goes to: ``namespace=``, else the Api's,
        else the object's own.

        An object naming another namespace than the request's is refused, as kubectl and
        client-go refuse it: an Api scoped to one namespace never writes in another, even
        when the object (built, say, from a custom resource's spec) says so.
        """
        if not self.resource.namespaced:
            return None
        metadata = (obj or {}).get("metadata")
        own = metadata.get("namespace") if isinstance(metadata, Mapping) else None
        if own is not None and not isinstance(own, str):
            raise TypeError(
                f"the {self.resource.kind}'s metadata.namespace must be a string, not"
                f" {type(own).__name__} {own!r:.60}"
            )
        if own:
            check_path_segment("namespace", own)
        ns = namespace or self.namespace or own
        if not ns:
            raise ValueError(
                f"{self.resource.full_name} are namespaced: pass namespace= (or set it on"
                " the Api or in the object's metadata)"
            )
        if own and own != ns:
            chosen = "namespace=" if namespace else "the Api's namespace"
            raise ValueError(
                f"the {self.resource.kind}'s metadata.namespace {own!r} does not match the"
                f" namespace {ns!r} of the request ({chosen}): pass namespace={own!r} to write"
                f" it there, or drop metadata.namespace to write it in {ns!r}"
            )
        return str(ns)

    def _object_path(
        self,
        namespace: str | None,
        name: object,
        subresource: str | None = None,
        obj: Mapping[str, Any] | None = None,
    ) -> str:
        """The path of one object, once its name is known to be one.

        An empty name would address the collection instead: a GET would read the list,
        and a DELETE would delete every object of the namespace.
        """
        if not isinstance(name, str):
            raise TypeError(
                f"the name of a {self.resource.kind} must be a string, not"
                f" {type(name).__name__} {name!r:.60}"
            )
        if not name:
            raise ValueError(f"resource name may not be empty ({self.resource.full_name})")
        return self.resource.path(self._object_namespace(namespace, obj), name, subresource)

    def _check_object(self, obj: object) -> None:
        if not isinstance(obj, Mapping):
            raise TypeError(
                f"a {self.resource.kind} to write is a mapping (its JSON as a dict), not"
                f" {type(obj).__name__} {obj!r:.60}"
            )

    @staticmethod
    def _name_of(obj: Mapping[str, Any]) -> str:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("the object has no metadata.name")
        return str(name)

    def _get(self, name: str, namespace: str | None, metadata_only: bool) -> Plan:
        path = self._object_path(namespace, name)
        return (yield Call("GET", path, accept=ACCEPT_METADATA if metadata_only else None))

    def _list(
        self,
        label_selector: str | None,
        field_selector: str | None,
        limit: int | None,
        metadata_only: bool,
    ) -> Plan:
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        accept = ACCEPT_METADATA_LIST if metadata_only else None
        path = self.resource.path(self.namespace)
        page_params = {**params, "limit": str(limit)} if limit else params
        result = yield Call("GET", path, page_params, accept=accept)
        items = [*(result.get("items") or ())]
        metadata = result.setdefault("metadata", {})
        while metadata.get("continue"):
            try:
                page = yield Call(
                    "GET", path, {**page_params, "continue": metadata["continue"]}, accept=accept
                )
            except Gone:
                # The continue token expired midway: read it all again, unpaged, as
                # client-go's pager does.
                return (yield Call("GET", path, params, accept=accept))
            items.extend(page.get("items") or ())
            metadata = page.get("metadata") or {}
        result["items"] = items
        result["metadata"].pop("continue", None)
        result["metadata"].pop("remainingItemCount", None)
        return result

    def _create(self, obj: dict[str, Any], namespace: str | None) -> Plan:
        self._check_object(obj)
        path = self.resource.path(self._object_namespace(namespace, obj))
        return (yield Call("POST", path, body=obj))

    def _replace(self, obj: dict[str, Any], namespace: str | None, subresource: str | None) -> Plan:
        self._check_object(obj)
        ns = self._object_namespace(namespace, obj)
        path = self.resource.path(ns, self._name_of(obj), subresource)
        return (yield Call("PUT", path, body=obj))

    def _patch(
        self,
        name: str,
        patch: dict[str, Any] | JsonPatch,
        type: PatchType,
        field_manager: str | None,
        force: bool,
        subresource: str | None,
        namespace: str | None,
    ) -> Plan:
        content_type = _PATCH_CONTENT_TYPES.get(type)
        if content_type is None:
            raise ValueError(
                f"unknown patch type {type!r}: use one of {', '.join(_PATCH_CONTENT_TYPES)}"
            )
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if type == "apply":
            if not field_manager:
                raise ValueError("a server-side apply patch needs field_manager=")
            if force:
                params["force"] = "true"
        elif force:
            raise ValueError("force= only applies to type='apply'")
        body = patch if isinstance(patch, Mapping) else None  # a JSON patch names no namespace
        path = self._object_path(namespace, name, subresource, body)
        return (yield Call("PATCH", path, params, body=patch, content_type=content_type))

    def _delete(
        self,
        name: str,
        namespace: str | None,
        propagation_policy: str | None,
        grace_period_seconds: int | None,
    ) -> Plan:
        params: dict[str, str] = {}
        if propagation_policy:
            params["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            params["gracePeriodSeconds"] = str(grace_period_seconds)
        path = self._object_path(namespace, name)
        return (yield Call("DELETE", path, params))
