"""Resources: which API a kind lives under, and the URL paths to reach it.

``Resource`` is plain data shared by the client and the test API server. The
built-in table lists the core kinds both sides know without discovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from .errors import ConfigError

__all__ = [
    "BUILTIN_KINDS",
    "BUILTIN_RESOURCES",
    "STORED_VERBS",
    "BuiltinKind",
    "Resource",
    "check_path_segment",
    "match_resource",
    "parse_resource_name",
]


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

        Raises:
            ValueError: a subresource without a name, or a namespace, name or subresource
                that cannot be one path segment (see :func:`check_path_segment`).
        """
        if subresource and not name:
            raise ValueError("a subresource path needs an object name")
        parts = [self.group_prefix]
        if namespace and self.namespaced:
            parts.append(f"namespaces/{quote(check_path_segment('namespace', namespace), safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(check_path_segment("resource name", name), safe=""))
        if subresource:
            parts.append(quote(check_path_segment("subresource", subresource), safe=""))
        return "/".join(parts)


_NOT_A_SEGMENT = (".", "..")
_NOT_IN_A_SEGMENT = ("/", "%")


def check_path_segment(what: str, value: str) -> str:
    """``value``, if it can be one segment of a URL path, as client-go's ``Request.Name``
    and ``Request.Namespace`` check (apimachinery's ``IsValidPathSegmentName``).

    A ``.`` or ``..`` segment is resolved away before the request is sent (RFC 3986's
    dot-segment removal), so ``.../namespaces/default/pods/..`` would address, and a
    DELETE would delete, the namespace itself. A ``/`` or ``%`` is in no valid name or
    namespace, and a proxy that decodes ``%2F`` would see another path.

    Args:
        what: what ``value`` is, for the message: ``"resource name"``, ``"namespace"``.
        value: the segment.

    Raises:
        ValueError: ``value`` is ``.`` or ``..``, or contains ``/`` or ``%``.

    Example:
        >>> check_path_segment("resource name", "web-0")
        'web-0'
        >>> check_path_segment("resource name", "..")
        Traceback (most recent call last):
        ...
        ValueError: invalid resource name '..': may not be '..'
    """
    if value in _NOT_A_SEGMENT:
        problems = [f"may not be {value!r}"]
    else:
        problems = [f"may not contain {bad!r}" for bad in _NOT_IN_A_SEGMENT if bad in value]
    if problems:
        raise ValueError(f"invalid {what} {value!r}: {', '.join(problems)}")
    return value


STORED_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
"""The verbs of a resource kept in storage, as discovery lists them."""


@dataclass(frozen=True, slots=True)
class BuiltinKind:
    """What kube-apiserver v1.32's discovery says of one built-in resource.

    Attributes:
        resource: group, version, kind, plural, scope and short names.
        verbs: the verbs of the resource itself.
        categories: the categories it belongs to (``all`` for ``kubectl get all``).
        subresources: ``status`` and ``scale`` where kube-apiserver has them (the others,
            such as ``pods/log``, are left out: nothing here serves them).
    """

    resource: Resource
    verbs: tuple[str, ...] = STORED_VERBS
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()


def _kinds(
    group: str, version: str, *rows: tuple[str, str, bool, str, str, str]
) -> tuple[BuiltinKind, ...]:
    """Rows of (kind, plural, namespaced, short names, categories, subresources): the last
    three comma-separated."""

    def split(text: str) -> tuple[str, ...]:
        return tuple(text.split(",")) if text else ()

    return tuple(
        BuiltinKind(
            Resource(group, version, kind, plural, namespaced, split(short)),
            categories=split(categories),
            subresources=split(subresources),
        )
        for kind, plural, namespaced, short, categories, subresources in rows
    )


_NAMESPACE_VERBS = tuple(v for v in STORED_VERBS if v != "deletecollection")
_ADMISSION = "api-extensions"

BUILTIN_KINDS: tuple[BuiltinKind, ...] = (
    BuiltinKind(Resource("", "v1", "Binding", "bindings", True), ("create",)),
    *_kinds(
        "",
        "v1",
        ("ConfigMap", "configmaps", True, "cm", "", ""),
        ("Endpoints", "endpoints", True, "ep", "", ""),
        ("Event", "events", True, "ev", "", ""),
        ("LimitRange", "limitranges", True, "limits", "", ""),
    ),
    BuiltinKind(
        Resource("", "v1", "Namespace", "namespaces", False, ("ns",)),
        verbs=_NAMESPACE_VERBS,
        subresources=("status",),
    ),
    *_kinds(
        "",
        "v1",
        ("Node", "nodes", False, "no", "", "status"),
        ("PersistentVolumeClaim", "persistentvolumeclaims", True, "pvc", "", "status"),
        ("PersistentVolume", "persistentvolumes", False, "pv", "", "status"),
        ("Pod", "pods", True, "po", "all", "status"),
        ("PodTemplate", "podtemplates", True, "", "", ""),
        ("ReplicationController", "replicationcontrollers", True, "rc", "all", "scale,status"),
        ("ResourceQuota", "resourcequotas", True, "quota", "", "status"),
        ("Secret", "secrets", True, "", "", ""),
        ("ServiceAccount", "serviceaccounts", True, "sa", "", ""),
        ("Service", "services", True, "svc", "all", "status"),
    ),
    *_kinds(
        "apiregistration.k8s.io",
        "v1",
        ("APIService", "apiservices", False, "", _ADMISSION, "status"),
    ),
    *_kinds(
        "apps",
        "v1",
        ("ControllerRevision", "controllerrevisions", True, "", "", ""),
        ("DaemonSet", "daemonsets", True, "ds", "all", "status"),
        ("Deployment", "deployments", True, "deploy", "all", "scale,status"),
        ("ReplicaSet", "replicasets", True, "rs", "all", "scale,status"),
        ("StatefulSet", "statefulsets", True, "sts", "all", "scale,status"),
    ),
    *_kinds("events.k8s.io", "v1", ("Event", "events", True, "ev", "", "")),
    *(
        BuiltinKind(Resource("authentication.k8s.io", "v1", kind, plural, False), ("create",))
        for kind, plural in (
            ("SelfSubjectReview", "selfsubjectreviews"),
            ("TokenReview", "tokenreviews"),
        )
    ),
    *(
        BuiltinKind(Resource("authorization.k8s.io", "v1", kind, plural, namespaced), ("create",))
        for kind, plural, namespaced in (
            ("LocalSubjectAccessReview", "localsubjectaccessreviews", True),
            ("SelfSubjectAccessReview", "selfsubjectaccessreviews", False),
            ("SelfSubjectRulesReview", "selfsubjectrulesreviews", False),
            ("SubjectAccessReview", "subjectaccessreviews", False),
        )
    ),
    *_kinds(
        "autoscaling",
        "v2",
        ("HorizontalPodAutoscaler", "horizontalpodautoscalers", True, "hpa", "all", "status"),
    ),
    *_kinds(
        "autoscaling",
        "v1",
        ("HorizontalPodAutoscaler", "horizontalpodautoscalers", True, "hpa", "all", "status"),
    ),
    *_kinds(
        "batch",
        "v1",
        ("CronJob", "cronjobs", True, "cj", "all", "status"),
        ("Job", "jobs", True, "", "all", "status"),
    ),
    *_kinds(
        "certificates.k8s.io",
        "v1",
        ("CertificateSigningRequest", "certificatesigningrequests", False, "csr", "", "status"),
    ),
    *_kinds(
        "networking.k8s.io",
        "v1",
        ("IngressClass", "ingressclasses", False, "", "", ""),
        ("Ingress", "ingresses", True, "ing", "", "status"),
        ("NetworkPolicy", "networkpolicies", True, "netpol", "", ""),
    ),
    *_kinds(
        "policy",
        "v1",
        ("PodDisruptionBudget", "poddisruptionbudgets", True, "pdb", "", "status"),
    ),
    *_kinds(
        "rbac.authorization.k8s.io",
        "v1",
        ("ClusterRoleBinding", "clusterrolebindings", False, "", "", ""),
        ("ClusterRole", "clusterroles", False, "", "", ""),
        ("RoleBinding", "rolebindings", True, "", "", ""),
        ("Role", "roles", True, "", "", ""),
    ),
    *_kinds(
        "storage.k8s.io",
        "v1",
        ("CSIDriver", "csidrivers", False, "", "", ""),
        ("CSINode", "csinodes", False, "", "", ""),
        ("CSIStorageCapacity", "csistoragecapacities", True, "", "", ""),
        ("StorageClass", "storageclasses", False, "sc", "", ""),
        ("VolumeAttachment", "volumeattachments", False, "", "", "status"),
    ),
    *_kinds(
        "admissionregistration.k8s.io",
        "v1",
        (
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            False,
            "",
            _ADMISSION,
            "",
        ),
        (
            "ValidatingAdmissionPolicy",
            "validatingadmissionpolicies",
            False,
            "",
            _ADMISSION,
            "status",
        ),
        (
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
            False,
            "",
            _ADMISSION,
            "",
        ),
        (
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            False,
            "",
            _ADMISSION,
            "",
        ),
    ),
    *_kinds("scheduling.k8s.io", "v1", ("PriorityClass", "priorityclasses", False, "pc", "", "")),
    *_kinds("coordination.k8s.io", "v1", ("Lease", "leases", True, "", "", "")),
    *_kinds("node.k8s.io", "v1", ("RuntimeClass", "runtimeclasses", False, "", "", "")),
    *_kinds("discovery.k8s.io", "v1", ("EndpointSlice", "endpointslices", True, "", "", "")),
    *_kinds(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        ("FlowSchema", "flowschemas", False, "", "", "status"),
        ("PriorityLevelConfiguration", "prioritylevelconfigurations", False, "", "", "status"),
    ),
)
"""The built-in resources of kube-apiserver v1.32 that the test API server serves and the
client knows without discovery: groups in the order of the server's ``/apis``, resources
in the order of its discovery documents.

Bindings and the authentication and authorization reviews are answered, not stored
(``verbs`` has ``create`` alone).
``events.k8s.io/v1`` Events share the storage of core ``v1`` Events, and ``autoscaling/v1``
HorizontalPodAutoscalers that of ``autoscaling/v2``: each is the same object read in
another version (``rxkube.testing`` converts them as kube-apiserver does). Left out:
``componentstatuses`` (computed by probing the control plane's components) and
CustomResourceDefinitions.
"""

BUILTIN_RESOURCES: tuple[Resource, ...] = tuple(kind.resource for kind in BUILTIN_KINDS)
"""The resources of :data:`BUILTIN_KINDS`."""


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
