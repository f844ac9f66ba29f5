"""Discovery: which resource a name means, from the built-in table or what the server serves.

A ``Client`` owns one ``Discovery`` and answers ``Client.resolve`` with it; the answers
of ``/api`` and ``/apis`` are cached, and a miss refreshes the cache once. Every document
is read through checks of its shape: a server (or a proxy in front of it) answering JSON
that is no discovery document gives a ``DecodeError`` naming the path and the field.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar, cast

from ._http import Response
from .errors import ConfigError, DecodeError
from .resource import BUILTIN_RESOURCES, Resource, match_resource, parse_resource_name

_T = TypeVar("_T")


class Discovery:
    """The resource types of one API server, discovered on demand and cached.

    Each discovery document is fetched once per generation of the cache, by the first
    thread that needs it, while the others that need it wait for that fetch, and those
    needing other documents go on with theirs: no request is sent under the lock. A
    failed fetch is not kept, so the next resolve tries it again.

    Args:
        get: sends ``GET path`` to the server and returns the whole response.
        server: the server's URL, for messages.
    """

    def __init__(self, get: Callable[[str], Response], server: str) -> None:
        self._get = get
        self._server = server
        # Guards _generation and the dict of each generation; held only to look a fetch
        # up, start one or drop a failed one, never while one runs; no other lock is
        # taken while it is held.
        self._lock = threading.Lock()
        self._generation: dict[str, Future[Any]] = {}

    def resolve(self, name: str) -> Resource:
        """The resource a name refers to (see ``Client.resolve``)."""
        found = match_resource(BUILTIN_RESOURCES, name)
        if found is not None:
            return found
        group, version, _ = parse_resource_name(name)
        with self._lock:
            generation = self._generation
        found = match_resource(self._discover(generation, group, version), name)
        if found is not None:
            return found
        with self._lock:
            # A miss refreshes the cache once: a generation begun since this resolve
            # began was fetched after it, and can be used as it is.
            if self._generation is generation:
                self._generation = {}
            generation = self._generation
        found = match_resource(self._discover(generation, group, version), name)
        if found is not None:
            return found
        raise ConfigError(f"the server {self._server} does not have a resource type {name!r}")

    def _discover(
        self, generation: dict[str, Future[Any]], group: str | None, version: str | None
    ) -> list[Resource]:
        """Resources of the group versions that a name with this group/version may mean."""
        if group is not None and version is not None:
            return self._group_version(generation, group, version)
        if group == "":
            return self._group_version(generation, "", "v1")
        found = list(self._group_version(generation, "", "v1")) if group is None else []
        groups = self._fetched(generation, "/apis", self._groups)
        for name, preferred in groups:
            if group is None or name == group:
                found.extend(self._group_version(generation, name, preferred))
        return found

    def _group_version(
        self, generation: dict[str, Future[Any]], group: str, version: str
    ) -> list[Resource]:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        return self._fetched(generation, path, lambda: self._resources(path, group, version))

    def _fetched(self, generation: dict[str, Future[Any]], path: str, read: Callable[[], _T]) -> _T:
        """What ``read`` makes of the document at ``path``, once per generation: read by
        this thread if no other has begun to, else as the thread reading it answers."""
        with self._lock:
            fetch = generation.get(path)
            mine = fetch is None
            if fetch is None:
                fetch = generation[path] = Future()
        if not mine:
            return cast(_T, fetch.result())
        try:
            document = read()
        except BaseException as exc:
            with self._lock:
                del generation[path]
            fetch.set_exception(exc)
            raise
        fetch.set_result(document)
        return document

    def _groups(self) -> list[tuple[str, str]]:
        """Each group the server serves, with the version to use of it."""
        path = "/apis"
        response = self._get(path)
        response.raise_for_status()
        document = _Document(path, self._server, response.json())
        groups: list[tuple[str, str]] = []
        for where, entry in document.objects(document.body, "groups"):
            name = document.string(entry, "name", where)
            preferred = entry.get("preferredVersion")
            if preferred is not None:
                if not isinstance(preferred, dict):
                    raise document.error(f"{where}.preferredVersion is {_kind(preferred)}")
                chosen = document.string(preferred, "version", f"{where}.preferredVersion")
            else:
                versions = document.objects(entry, "versions", where)
                if not versions:
                    continue
                chosen = document.string(versions[0][1], "version", versions[0][0])
            groups.append((name, chosen))
        return groups

    def _resources(self, path: str, group: str, version: str) -> list[Resource]:
        """The resources of one group version (none if the server does not serve it)."""
        response = self._get(path)
        if response.status == 404:
            return []
        response.raise_for_status()
        document = _Document(path, self._server, response.json())
        resources: list[Resource] = []
        for where, item in document.objects(document.body, "resources"):
            name = document.string(item, "name", where)
            if "/" in name:  # a subresource (pods/log)
                continue
            namespaced = item.get("namespaced", False)
            if not isinstance(namespaced, bool):
                raise document.error(f"{where}.namespaced is {_kind(namespaced)}, not a boolean")
            short_names = item.get("shortNames") or []
            if not isinstance(short_names, list) or not all(
                isinstance(s, str) for s in short_names
            ):
                raise document.error(f"{where}.shortNames is not a list of strings")
            kind = document.string(item, "kind", where)
            resources.append(Resource(group, version, kind, name, namespaced, tuple(short_names)))
        return resources


class _Document:
    """One decoded discovery document, with checked reads of its fields."""

    def __init__(self, path: str, server: str, body: Any) -> None:
        self.path = path
        self.server = server
        if not isinstance(body, dict):
            raise self.error(f"expected a JSON object, got {_kind(body)}")
        self.body: dict[str, Any] = body

    def error(self, problem: str) -> DecodeError:
        return DecodeError(f"GET {self.path} on {self.server}: not a discovery document: {problem}")

    def objects(
        self, parent: dict[str, Any], key: str, where: str = ""
    ) -> list[tuple[str, dict[str, Any]]]:
        """The objects of the list ``parent[key]`` (absent or null: none), each with where
        it is (``groups[2]``)."""
        at = f"{where}.{key}" if where else key
        items = parent.get(key)
        if items is None:
            return []
        if not isinstance(items, list):
            raise self.error(f"{at} is {_kind(items)}, not a list")
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise self.error(f"{at}[{index}] is {_kind(item)}, not an object")
        return [(f"{at}[{index}]", item) for index, item in enumerate(items)]

    def string(self, parent: dict[str, Any], key: str, where: str) -> str:
        value = parent.get(key)
        if not isinstance(value, str) or not value:
            got = "missing" if value is None else _kind(value)
            raise self.error(f"{where}.{key} is {got}, not a non-empty string")
        return value


def _kind(value: object) -> str:
    """How a JSON value is spoken of in messages: ``a number (7)``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    named = (
        "a boolean"
        if isinstance(value, bool)
        else "a string"
        if isinstance(value, str)
        else "a number"
    )
    return f"{named} ({value!r:.40})"
