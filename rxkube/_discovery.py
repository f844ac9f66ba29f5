"""Discovery: which resource a name means, from the built-in table or what the server serves.

A ``Client`` owns one ``Discovery`` and answers ``Client.resolve`` with it; the answers
of ``/api`` and ``/apis`` are cached, and a miss refreshes the cache once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._http import Response
from .errors import ConfigError, DecodeError
from .resource import BUILTIN_RESOURCES, Resource, match_resource, parse_resource_name


class Discovery:
    """The resource types of one API server, discovered on demand and cached.

    Args:
        get: sends ``GET path`` to the server and returns the whole response.
        server: the server's URL, for messages.
    """

    def __init__(self, get: Callable[[str], Response], server: str) -> None:
        self._get = get
        self._server = server
        self._lock = threading.Lock()
        self._discovered: list[Resource] | None = None
        self._group_cache: dict[str, list[Resource]] = {}

    def resolve(self, name: str) -> Resource:
        """The resource a name refers to (see ``Client.resolve``)."""
        found = match_resource(BUILTIN_RESOURCES, name)
        if found is not None:
            return found
        group, version, _ = parse_resource_name(name)
        with self._lock:
            for fresh in (False, True):
                if fresh:
                    self._group_cache.clear()
                    self._discovered = None
                found = match_resource(self._discover(group, version), name)
                if found is not None:
                    return found
        raise ConfigError(f"the server {self._server} does not have a resource type {name!r}")

    def _discover(self, group: str | None, version: str | None) -> list[Resource]:
        """Resources of the group versions that a name with this group/version may mean."""
        if group is not None and version is not None:
            return self._group_version(group, version)
        if group == "":
            return self._group_version("", "v1")
        if group is None and self._discovered is not None:
            return self._discovered
        found = self._group_version("", "v1") if group is None else []
        listing = self._get_json("/apis")
        for entry in listing.get("groups") or ():
            if group is not None and entry.get("name") != group:
                continue
            preferred = (entry.get("preferredVersion") or {}).get("version")
            versions = [v.get("version") for v in entry.get("versions") or ()]
            for v in [preferred] if preferred else versions[:1]:
                found.extend(self._group_version(entry["name"], v))
        if group is None:
            self._discovered = found
        return found

    def _group_version(self, group: str, version: str) -> list[Resource]:
        key = f"{group}/{version}"
        cached = self._group_cache.get(key)
        if cached is not None:
            return cached
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        response = self._get(path)
        if response.status == 404:
            resources: list[Resource] = []
        else:
            response.raise_for_status()
            listing = response.json()
            resources = [
                Resource(
                    group,
                    version,
                    item["kind"],
                    item["name"],
                    bool(item.get("namespaced")),
                    tuple(item.get("shortNames") or ()),
                )
                for item in listing.get("resources") or ()
                if "/" not in item.get("name", "/") and item.get("kind")
            ]
        self._group_cache[key] = resources
        return resources

    def _get_json(self, path: str) -> dict[str, Any]:
        response = self._get(path)
        response.raise_for_status()
        decoded = response.json()
        if not isinstance(decoded, dict):
            raise DecodeError(f"GET {path} on {self._server}: expected a JSON object")
        return decoded
