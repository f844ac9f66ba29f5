"""Resources: which API a kind lives under, and the URL paths to reach it.

``Resource`` is plain data shared by the client and the test API server. The
built-in table lists the core kinds both sides know without discovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from .errors import ConfigError


@dataclass(frozen=True, slots=True)
class Resource:
    """A Kubernetes resource type: group, version, kind, plural and scope.

    Args:
        group: the API group, ``""`` for the core group.
        version: the API version within the group, e.g. ``"v1"``.
        kind: the object kind, e.g. ``"Deployment"``.
        plural: the resource name used in URLs, e.g. ``"deployments"``.
        namespaced: whether objects live in namespaces.
        short_names: abbreviations accepted where a resource is named.

    Example:
        >>> Resource("apps", "v1", "Deployment", "deployments").api_version
        'apps/v1'
    """

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name in ("version", "kind", "plural"):
            if not getattr(self, name):
                raise ValueError(f"Resource.{name} must not be empty")
        if "/" in self.plural or "/" in self.group:
            raise ValueError(f"Resource plural and group must not contain '/': {self!r}")

    @property
    def api_version(self) -> str:
        """``group/version``, or just ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_prefix(self) -> str:
        """The URL prefix of the group version: ``/api/v1`` or ``/apis/{group}/{version}``."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def full_name(self) -> str:
        """``plural.group`` (``pods`` for core resources), as kubectl names them."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path of the collection, or of one object when ``name`` is given.

        Args:
            namespace: the namespace; ``None`` for all namespaces or a cluster-scoped resource.
            name: an object name, for a single-object path.
            subresource: e.g. ``"status"``; needs ``name``.
        """
        if subresource and not name:
            raise ValueError("a subresource path needs an object name")
        parts = [self.group_prefix]
        if namespace and self.namespaced:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


BUILTIN_RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "Pod", "pods", True, ("po",)),
    Resource("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    Resource("", "v1", "Secret", "secrets", True),
    Resource("", "v1", "Service", "services", True, ("svc",)),
    Resource("", "v1", "Event", "events", True, ("ev",)),
    Resource("", "v1", "Namespace", "namespaces", False, ("ns",)),
    Resource("", "v1", "Node", "nodes", False, ("no",)),
    Resource("apps", "v1", "Deployment", "deployments", True, ("deploy",)),
    Resource("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",)),
    Resource("coordination.k8s.io", "v1", "Lease", "leases", True),
)
"""The kinds the test API server serves out of the box and the client knows without discovery."""


def parse_resource_name(name: str) -> tuple[str | None, str | None, str]:
    """Split a user's resource name into ``(group, version, plural-or-alias)``.

    Accepts ``"pods"``, ``"po"``, ``"Pod"``, ``"deployments.apps"``, ``"apps/v1/deployments"``
    and ``"v1/pods"``. Group and version are ``None`` where the name does not say.
    """
    if not name or name != name.strip():
        raise ConfigError(f"invalid resource name {name!r}")
    parts = name.split("/")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) != 1:
        raise ConfigError(
            f"invalid resource name {name!r}: use 'plural', 'plural.group' or 'group/version/plural'"
        )
    plural, dot, group = name.partition(".")
    return (group if dot else None), None, plural


def match_resource(candidates: tuple[Resource, ...] | list[Resource], name: str) -> Resource | None:
    """Find the resource a user's name refers to among ``candidates``, or ``None``.

    The name matches a plural, a kind (case-insensitively) or a short name, with an
    optional group and version as accepted by :func:`parse_resource_name`.
    """
    group, version, ident = parse_resource_name(name)
    lowered = ident.lower()
    for res in candidates:
        if group is not None and res.group != group:
            continue
        if version is not None and res.version != version:
            continue
        if lowered in (res.plural, res.kind.lower()) or lowered in res.short_names:
            return res
    return None
