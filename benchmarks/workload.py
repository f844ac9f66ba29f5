"""The benchmark workload: realistic pods of about 4.5 KB of JSON, and changes to them.

Each pod looks like one a Deployment's ReplicaSet creates on a real cluster: labels,
annotations, an ownerReference, one container with resources, env and volume mounts,
tolerations, a status with conditions and containerStatuses, and ``managedFields``
from two managers (the controller manager and the kubelet). Values vary per pod the way
they do on a cluster (names, uids, IPs, hashes), so interning and compression are not
flattered by identical objects. Everything is deterministic: pod ``i`` is always the same.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

NAMESPACE = "bench"
"""The namespace every benchmark pod lives in."""

_APPS = ("checkout", "payments", "catalog", "search", "frontend", "ledger", "mailer", "auth")
_NODES = 40
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_T0 = "2026-11-02T08:14:%02dZ"


def _hex(seed: str, n: int) -> str:
    return hashlib.blake2b(seed.encode(), digest_size=16).hexdigest()[:n]


def _suffix(i: int) -> str:
    """Five characters like the ones Kubernetes appends to generated names; unique per ``i``."""
    n = (i * 7_368_787) % len(_ALPHABET) ** 5  # a prime: a bijection that looks random
    out = []
    for _ in range(5):
        n, r = divmod(n, len(_ALPHABET))
        out.append(_ALPHABET[r])
    return "".join(out)


def _uid(seed: str) -> str:
    h = hashlib.blake2b(seed.encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def make_pod(i: int, namespace: str = NAMESPACE) -> dict[str, Any]:
    """Return pod number ``i``: a plain dict ready to create on the server.

    Args:
        i: the pod's index; the same index always gives the same pod.
        namespace: the namespace to put it in.
    """
    app = _APPS[i % len(_APPS)]
    rs_hash = _hex(f"rs-{app}", 10)
    name = f"{app}-{rs_hash}-{_suffix(i)}"
    node = f"ip-10-0-{i % _NODES}-{(i * 7) % 250 + 2}.eu-west-1.compute.internal"
    pod_ip = f"10.{1 + i // 65000}.{(i // 250) % 256}.{i % 250 + 2}"
    ts = _T0 % (i % 60)
    image = f"registry.example.com/shop/{app}:v1.{i % 7}.{i % 13}"
    container_id = "containerd://" + _hex(f"ctr-{i}", 32) * 2
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": f"{app}-{rs_hash}-",
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/instance": f"{app}-prod",
                "app.kubernetes.io/component": "api",
                "app.kubernetes.io/part-of": "shop",
                "pod-template-hash": rs_hash,
                "tier": "backend" if i % 3 else "frontend",
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9102",
                "checksum/config": _hex(f"cfg-{app}", 32),
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{app}-{rs_hash}",
                    "uid": _uid(f"rs-{app}"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": _managed_fields(ts),
        },
        "spec": {
            "containers": [
                {
                    "name": app,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9102, "protocol": "TCP"},
                    ],
                    "env": [
                        {"name": "APP_ENV", "value": "production"},
                        {"name": "LOG_LEVEL", "value": "info"},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                            },
                        },
                        {
                            "name": "DB_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": f"{app}-db", "key": "password"}},
                        },
                    ],
                    "resources": {
                        "limits": {"cpu": "1", "memory": "512Mi"},
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/app", "readOnly": True},
                        {
                            "name": "kube-api-access",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": True,
                        },
                    ],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": 420}},
                {
                    "name": "kube-api-access",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ],
                    },
                },
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": app,
            "nodeName": node,
            "schedulerName": "default-scheduler",
            "priority": 0,
            "enableServiceLinks": True,
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": ts}
                for t in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "hostIP": f"10.0.{i % _NODES}.{(i * 7) % 250 + 2}",
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": ts,
            "qosClass": "Burstable",
            "containerStatuses": [
                {
                    "name": app,
                    "state": {"running": {"startedAt": ts}},
                    "lastState": {},
                    "ready": True,
                    "restartCount": i % 4,
                    "image": image,
                    "imageID": f"registry.example.com/shop/{app}@sha256:" + _hex(image, 32) * 2,
                    "containerID": container_id,
                    "started": True,
                }
            ],
        },
    }


def _managed_fields(ts: str) -> list[dict[str, Any]]:
    """Managed fields as the controller manager and the kubelet leave them on a pod."""
    return [
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "v1",
            "time": ts,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:generateName": {},
                    "f:labels": {
                        ".": {},
                        "f:app.kubernetes.io/component": {},
                        "f:app.kubernetes.io/instance": {},
                        "f:app.kubernetes.io/name": {},
                        "f:pod-template-hash": {},
                    },
                    "f:ownerReferences": {".": {}, 'k:{"uid":"..."}': {}},
                },
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"app"}': {
                            ".": {},
                            "f:env": {".": {}, 'k:{"name":"APP_ENV"}': {".": {}, "f:name": {}}},
                            "f:image": {},
                            "f:resources": {".": {}, "f:limits": {}, "f:requests": {}},
                            "f:volumeMounts": {".": {}},
                        }
                    },
                    "f:tolerations": {},
                    "f:volumes": {".": {}},
                },
            },
        },
        {
            "manager": "kubelet",
            "operation": "Update",
            "apiVersion": "v1",
            "time": ts,
            "fieldsType": "FieldsV1",
            "subresource": "status",
            "fieldsV1": {
                "f:status": {
                    "f:conditions": {
                        'k:{"type":"ContainersReady"}': {".": {}, "f:status": {}},
                        'k:{"type":"Ready"}': {".": {}, "f:status": {}},
                    },
                    "f:containerStatuses": {},
                    "f:hostIP": {},
                    "f:phase": {},
                    "f:podIP": {},
                    "f:podIPs": {".": {}, 'k:{"ip":"..."}': {}},
                    "f:startTime": {},
                }
            },
        },
    ]


def modified(pod: dict[str, Any], n: int) -> dict[str, Any]:
    """Return change number ``n`` of ``pod``: a kubelet status update, as a new dict.

    The restart count and the container's start time change, so every event carries
    a different object of the same size.
    """
    status = dict(pod["status"])
    cs = dict(status["containerStatuses"][0])
    cs["restartCount"] = n
    cs["state"] = {"running": {"startedAt": _T0 % (n % 60)}}
    status["containerStatuses"] = [cs]
    new = dict(pod)
    new["status"] = status
    meta = dict(pod["metadata"])
    meta.pop("resourceVersion", None)
    new["metadata"] = meta
    return new


def pod_size(i: int = 0) -> int:
    """The size in bytes of pod ``i`` encoded as JSON (without server-set fields)."""
    return len(orjson.dumps(make_pod(i)))
