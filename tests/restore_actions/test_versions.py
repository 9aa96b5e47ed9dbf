"""Choosing the version each resource is restored at (requirements §8)."""

from kube.discovery import ApiResource
from kube.export import BundleIndex
from kube.restore.versions import choose_versions, version_rank


def bundle(
    group: str, version: str, plural: str, kind: str, *, preferred: bool = False, count: int = 1
) -> BundleIndex:
    core = group or "core"
    return BundleIndex(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=True,
        preferred=preferred,
        key=f"backups/b1/resources/{core}/{version}/{plural}.jsonl.zst",
        count=count,
        bytes=100,
    )


def served(group: str, version: str, plural: str, kind: str, *, preferred: bool = False) -> ApiResource:
    return ApiResource(
        group=group, version=version, plural=plural, kind=kind, namespaced=True, preferred=preferred
    )


# What a 1.16 cluster's backup holds for ingresses and deployments.
BACKUP_116 = [
    bundle("extensions", "v1beta1", "ingresses", "Ingress", preferred=True),
    bundle("networking.k8s.io", "v1beta1", "ingresses", "Ingress", preferred=True),
    bundle("extensions", "v1beta1", "deployments", "Deployment", preferred=True),
    bundle("apps", "v1", "deployments", "Deployment", preferred=True),
    bundle("", "v1", "configmaps", "ConfigMap", preferred=True),
]
# What a 1.22+ cluster serves for them.
TARGET_122 = [
    served("networking.k8s.io", "v1", "ingresses", "Ingress", preferred=True),
    served("apps", "v1", "deployments", "Deployment", preferred=True),
    served("", "v1", "configmaps", "ConfigMap", preferred=True),
]


def test_ingress_from_116_to_122_fails_naming_kind_and_versions() -> None:
    choice = choose_versions(BACKUP_116, TARGET_122)["ingresses.networking.k8s.io"]
    assert not choice.served and choice.bundle is None
    assert choice.kind == "Ingress"
    assert choice.captured == ["extensions/v1beta1", "networking.k8s.io/v1beta1"]
    problem = choice.problem()
    assert problem is not None and "Ingress" in problem and "extensions/v1beta1" in problem
    error = choice.item_error("shop", "web")
    assert error is not None
    assert error.code == "NoServedVersion"
    assert error.message == (
        "Ingress shop/web: none of the captured versions "
        "(extensions/v1beta1, networking.k8s.io/v1beta1) is served by this cluster"
    )


def test_legacy_groups_fold_into_their_successor() -> None:
    choices = choose_versions(BACKUP_116, TARGET_122)
    assert sorted(choices) == ["configmaps", "deployments.apps", "ingresses.networking.k8s.io"]
    deploy = choices["deployments.apps"]
    assert deploy.bundle is not None and (deploy.bundle.group, deploy.bundle.version) == ("apps", "v1")
    assert deploy.target is not None and deploy.target.group_version == "apps/v1"
    assert deploy.item_error("shop", "web") is None and deploy.problem() is None


def test_target_preferred_version_wins() -> None:
    captured = [
        bundle("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
        bundle("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", preferred=True),
    ]
    target = [
        served("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", preferred=True),
        served("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ]
    choice = choose_versions(captured, target)["horizontalpodautoscalers.autoscaling"]
    assert choice.bundle is not None and choice.bundle.version == "v1"


def test_successor_group_preferred_over_legacy_when_both_are_preferred() -> None:
    # A 1.15 target: extensions and apps both serve deployments, each its group's preferred.
    target = [
        served("extensions", "v1beta1", "deployments", "Deployment", preferred=True),
        served("apps", "v1", "deployments", "Deployment", preferred=True),
    ]
    choice = choose_versions(BACKUP_116, target)["deployments.apps"]
    assert choice.bundle is not None and choice.bundle.group == "apps"


def test_older_target_gets_a_served_captured_version() -> None:
    # A 1.21+ backup holds CronJobs as batch/v1 and batch/v1beta1; 1.19 serves only v1beta1.
    captured = [
        bundle("batch", "v1", "cronjobs", "CronJob", preferred=True),
        bundle("batch", "v1beta1", "cronjobs", "CronJob"),
    ]
    target = [served("batch", "v1beta1", "cronjobs", "CronJob")]
    choice = choose_versions(captured, target)["cronjobs.batch"]
    assert choice.bundle is not None and choice.bundle.version == "v1beta1"


def test_ga_before_beta_before_alpha_when_the_preferred_was_not_captured() -> None:
    captured = [
        bundle("demo.io", v, "widgets", "Widget") for v in ("v1alpha1", "v1beta1", "v1beta2", "v2beta1")
    ]
    target = [
        served("demo.io", "v3", "widgets", "Widget", preferred=True),
        served("demo.io", "v1alpha1", "widgets", "Widget"),
        served("demo.io", "v1beta1", "widgets", "Widget"),
        served("demo.io", "v1beta2", "widgets", "Widget"),
    ]
    choice = choose_versions(captured, target)["widgets.demo.io"]
    assert choice.bundle is not None and choice.bundle.version == "v1beta2"
    captured.append(bundle("demo.io", "v1", "widgets", "Widget"))
    target.append(served("demo.io", "v1", "widgets", "Widget"))
    target.append(served("demo.io", "v2beta1", "widgets", "Widget"))
    choice = choose_versions(captured, target)["widgets.demo.io"]
    assert choice.bundle is not None and choice.bundle.version == "v1"


def test_custom_resources_without_their_crd_are_unserved() -> None:
    choice = choose_versions([bundle("demo.io", "v1", "widgets", "Widget")], TARGET_122)["widgets.demo.io"]
    assert not choice.served
    error = choice.item_error("", "w1")
    assert error is not None and error.message.startswith("Widget w1:")


def test_version_rank() -> None:
    ordered = ["weird", "v1alpha1", "v1alpha2", "v2alpha1", "v1beta1", "v1beta2", "v1", "v2"]
    assert sorted(ordered, key=version_rank) == ordered


def test_choices_survive_serialization() -> None:
    choice = choose_versions(BACKUP_116, TARGET_122)["deployments.apps"]
    assert type(choice).model_validate_json(choice.model_dump_json()) == choice
