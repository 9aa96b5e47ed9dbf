"""Restore order (issue 7: CRDs -> namespaces -> storage -> config/RBAC -> workloads -> network -> rest)."""

from kube.restore.order import Phase, order_groups, phase_of

ALL = [
    "widgets.demo.io",
    "services",
    "ingresses.networking.k8s.io",
    "pods",
    "cronjobs.batch",
    "jobs.batch",
    "replicasets.apps",
    "daemonsets.apps",
    "statefulsets.apps",
    "deployments.apps",
    "resourcequotas",
    "limitranges",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "clusterroles.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "volumesnapshots.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "persistentvolumeclaims",
    "persistentvolumes",
    "storageclasses.storage.k8s.io",
    "namespaces",
    "customresourcedefinitions.apiextensions.k8s.io",
    "horizontalpodautoscalers.autoscaling",
    "networkpolicies.networking.k8s.io",
]


def test_phases_in_order() -> None:
    assert order_groups(ALL) == [
        ["customresourcedefinitions.apiextensions.k8s.io"],
        ["namespaces"],
        [
            "storageclasses.storage.k8s.io",
            "volumesnapshotclasses.snapshot.storage.k8s.io",
            "volumesnapshotcontents.snapshot.storage.k8s.io",
            "volumesnapshots.snapshot.storage.k8s.io",
            "persistentvolumes",
            "persistentvolumeclaims",
        ],
        [
            "serviceaccounts",
            "secrets",
            "configmaps",
            "roles.rbac.authorization.k8s.io",
            "clusterroles.rbac.authorization.k8s.io",
            "rolebindings.rbac.authorization.k8s.io",
            "clusterrolebindings.rbac.authorization.k8s.io",
            "limitranges",
            "resourcequotas",
        ],
        [
            "deployments.apps",
            "statefulsets.apps",
            "daemonsets.apps",
            "replicasets.apps",
            "jobs.batch",
            "cronjobs.batch",
            "pods",
        ],
        ["services", "ingresses.networking.k8s.io"],
        ["horizontalpodautoscalers.autoscaling", "networkpolicies.networking.k8s.io", "widgets.demo.io"],
    ]


def test_empty_phases_are_left_out_and_phase_of_tells_them_apart() -> None:
    groups = order_groups(["widgets.demo.io", "configmaps", "customresourcedefinitions.apiextensions.k8s.io"])
    assert groups == [["customresourcedefinitions.apiextensions.k8s.io"], ["configmaps"], ["widgets.demo.io"]]
    assert [phase_of(g[0]) for g in groups] == [Phase.crds, Phase.config, Phase.rest]


def test_legacy_groups_go_where_their_successors_go() -> None:
    assert phase_of("deployments.extensions") is Phase.workloads
    assert phase_of("ingresses.extensions") is Phase.network
    assert order_groups(["ingresses.extensions", "deployments.extensions", "deployments.apps"]) == [
        ["deployments.apps", "deployments.extensions"],
        ["ingresses.extensions"],
    ]


def test_duplicates_and_empty_input() -> None:
    assert order_groups(["pods", "pods"]) == [["pods"]]
    assert order_groups([]) == []


def test_storage_before_workloads_before_services() -> None:
    assert (
        phase_of("persistentvolumeclaims")
        < phase_of("pods")
        < phase_of("services")
        < phase_of("x.example.io")
    )
    assert phase_of("customresourcedefinitions.apiextensions.k8s.io") < phase_of("namespaces")
