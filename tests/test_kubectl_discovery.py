"""kubectl's discovery against the test API server: what it finds and which manifests it can apply.

Run with the real kubectl (skipped where none is on PATH); the same behaviours are tested
over HTTP in tests/test_apiserver_discovery.py. The expected ``api-resources`` rows are
those kube-apiserver v1.32 gives for the same kinds.
"""

from __future__ import annotations

import pytest

from rxkube.testing import ApiServer
from tests.kubectl_harness import Kubectl

# kubectl api-resources on kube-apiserver v1.32, for the resources served here (columns
# re-spaced: kubectl pads them to the widest entry).
REAL_API_RESOURCES = """\
NAME SHORTNAMES APIVERSION NAMESPACED KIND
bindings v1 true Binding
configmaps cm v1 true ConfigMap
endpoints ep v1 true Endpoints
events ev v1 true Event
limitranges limits v1 true LimitRange
namespaces ns v1 false Namespace
nodes no v1 false Node
persistentvolumeclaims pvc v1 true PersistentVolumeClaim
persistentvolumes pv v1 false PersistentVolume
pods po v1 true Pod
podtemplates v1 true PodTemplate
replicationcontrollers rc v1 true ReplicationController
resourcequotas quota v1 true ResourceQuota
secrets v1 true Secret
serviceaccounts sa v1 true ServiceAccount
services svc v1 true Service
mutatingwebhookconfigurations admissionregistration.k8s.io/v1 false MutatingWebhookConfiguration
validatingadmissionpolicies admissionregistration.k8s.io/v1 false ValidatingAdmissionPolicy
validatingadmissionpolicybindings admissionregistration.k8s.io/v1 false ValidatingAdmissionPolicyBinding
validatingwebhookconfigurations admissionregistration.k8s.io/v1 false ValidatingWebhookConfiguration
customresourcedefinitions crd,crds apiextensions.k8s.io/v1 false CustomResourceDefinition
apiservices apiregistration.k8s.io/v1 false APIService
controllerrevisions apps/v1 true ControllerRevision
daemonsets ds apps/v1 true DaemonSet
deployments deploy apps/v1 true Deployment
replicasets rs apps/v1 true ReplicaSet
statefulsets sts apps/v1 true StatefulSet
selfsubjectreviews authentication.k8s.io/v1 false SelfSubjectReview
tokenreviews authentication.k8s.io/v1 false TokenReview
localsubjectaccessreviews authorization.k8s.io/v1 true LocalSubjectAccessReview
selfsubjectaccessreviews authorization.k8s.io/v1 false SelfSubjectAccessReview
selfsubjectrulesreviews authorization.k8s.io/v1 false SelfSubjectRulesReview
subjectaccessreviews authorization.k8s.io/v1 false SubjectAccessReview
horizontalpodautoscalers hpa autoscaling/v2 true HorizontalPodAutoscaler
cronjobs cj batch/v1 true CronJob
jobs batch/v1 true Job
certificatesigningrequests csr certificates.k8s.io/v1 false CertificateSigningRequest
leases coordination.k8s.io/v1 true Lease
endpointslices discovery.k8s.io/v1 true EndpointSlice
events ev events.k8s.io/v1 true Event
flowschemas flowcontrol.apiserver.k8s.io/v1 false FlowSchema
prioritylevelconfigurations flowcontrol.apiserver.k8s.io/v1 false PriorityLevelConfiguration
ingressclasses networking.k8s.io/v1 false IngressClass
ingresses ing networking.k8s.io/v1 true Ingress
networkpolicies netpol networking.k8s.io/v1 true NetworkPolicy
runtimeclasses node.k8s.io/v1 false RuntimeClass
poddisruptionbudgets pdb policy/v1 true PodDisruptionBudget
clusterrolebindings rbac.authorization.k8s.io/v1 false ClusterRoleBinding
clusterroles rbac.authorization.k8s.io/v1 false ClusterRole
rolebindings rbac.authorization.k8s.io/v1 true RoleBinding
roles rbac.authorization.k8s.io/v1 true Role
priorityclasses pc scheduling.k8s.io/v1 false PriorityClass
csidrivers storage.k8s.io/v1 false CSIDriver
csinodes storage.k8s.io/v1 false CSINode
csistoragecapacities storage.k8s.io/v1 true CSIStorageCapacity
storageclasses sc storage.k8s.io/v1 false StorageClass
volumeattachments storage.k8s.io/v1 false VolumeAttachment
"""


def squeeze(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def test_api_resources_match_kube_apiserver(kubectl: Kubectl) -> None:
    assert squeeze(kubectl("api-resources").stdout) == squeeze(REAL_API_RESOURCES)


def test_api_resources_by_category_and_verbs(kubectl: Kubectl) -> None:
    names = kubectl("api-resources", "--categories=all", "-o", "name").stdout.split()
    assert sorted(names) == sorted(
        [
            "pods",
            "replicationcontrollers",
            "services",
            "daemonsets.apps",
            "deployments.apps",
            "replicasets.apps",
            "statefulsets.apps",
            "horizontalpodautoscalers.autoscaling",
            "cronjobs.batch",
            "jobs.batch",
        ]
    )
    wide = squeeze(kubectl("api-resources", "--api-group=", "-o", "wide").stdout)
    assert "namespaces ns v1 false Namespace create,delete,get,list,patch,update,watch" in wide


def test_kubectl_uses_aggregated_discovery(apiserver: ApiServer, kubectl: Kubectl) -> None:
    """kubectl v1.32 asks /api and /apis for an APIGroupDiscoveryList first; served one,
    it fetches no per-group document (client-go discovery/aggregated_discovery.go)."""
    kubectl("get", "statefulsets")
    paths = {r.path for r in apiserver.requests if r.verb == "discovery"}
    assert {"/api", "/apis"} <= paths
    assert not {p for p in paths if p.startswith(("/api/", "/apis/"))}


MANIFEST = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: app}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: busybox}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: busybox}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules: [{host: example.com}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: app-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: app}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-reader}
rules: [{apiGroups: [""], resources: [nodes], verbs: [get]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
"""


@pytest.mark.parametrize("server_side", [False, True])
def test_applies_a_manifest_of_common_kinds(
    apiserver: ApiServer, kubectl: Kubectl, server_side: bool
) -> None:
    # --validate=false: the OpenAPI documents kubectl validates with are another matter.
    args = ["apply", "--validate=false", "-f", "-"] + (["--server-side"] if server_side else [])
    out = kubectl(*args, stdin=MANIFEST).stdout.splitlines()
    verb = "serverside-applied" if server_side else "created"
    assert out == [
        f"serviceaccount/app {verb}",
        f"persistentvolumeclaim/data {verb}",
        f"statefulset.apps/db {verb}",
        f"daemonset.apps/agent {verb}",
        f"job.batch/migrate {verb}",
        f"ingress.networking.k8s.io/web {verb}",
        f"role.rbac.authorization.k8s.io/reader {verb}",
        f"rolebinding.rbac.authorization.k8s.io/app-reader {verb}",
        f"clusterrole.rbac.authorization.k8s.io/node-reader {verb}",
        f"endpointslice.discovery.k8s.io/web-1 {verb}",
    ]
    assert apiserver.get("statefulsets", "db")["spec"]["serviceName"] == "db"
    names = kubectl("get", "sa,pvc,sts,ds,jobs,ing,roles,rolebindings", "-o", "name").stdout
    assert names.split() == [
        "serviceaccount/app",
        "persistentvolumeclaim/data",
        "statefulset.apps/db",
        "daemonset.apps/agent",
        "job.batch/migrate",
        "ingress.networking.k8s.io/web",
        "role.rbac.authorization.k8s.io/reader",
        "rolebinding.rbac.authorization.k8s.io/app-reader",
    ]
    deleted = kubectl("delete", "--wait=false", "-f", "-", stdin=MANIFEST).stdout
    assert 'statefulset.apps "db" deleted' in deleted.splitlines()
    assert apiserver.list("statefulsets", namespace=None) == []
