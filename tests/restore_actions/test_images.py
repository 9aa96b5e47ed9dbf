"""Image registry mapping and the four forms of per-cluster image rewrite rules (requirements §8)."""

import pytest

from kube.restore.images import ImageRef, RuleForm, map_registry, parse_image_rules, parse_rule
from schemas.errors import BackupCenterError

DIGEST = "sha256:" + "a" * 64


# --- references ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "", "nginx", "", ""),
        ("nginx:1.25", "", "nginx", "1.25", ""),
        ("library/nginx:1.25", "", "library/nginx", "1.25", ""),
        ("docker.io/library/app1:v1", "docker.io", "library/app1", "v1", ""),
        ("localhost:5000/team/app:dev", "localhost:5000", "team/app", "dev", ""),
        ("localhost/app", "localhost", "app", "", ""),
        ("1.1.1.1:5000/abc:test", "1.1.1.1:5000", "abc", "test", ""),
        (f"registry.example.com/a/b/c@{DIGEST}", "registry.example.com", "a/b/c", "", DIGEST),
        (f"app:v1@{DIGEST}", "", "app", "v1", DIGEST),
    ],
)
def test_parses_references(text: str, registry: str, repository: str, tag: str, digest: str) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert str(ref) == text


def test_normalizes_docker_hub_references() -> None:
    assert str(ImageRef.parse("nginx:1.25").normalized()) == "docker.io/library/nginx:1.25"
    assert str(ImageRef.parse("bitnami/redis").normalized()) == "docker.io/bitnami/redis"
    assert str(ImageRef.parse("index.docker.io/library/nginx").normalized()) == "docker.io/library/nginx"
    assert str(ImageRef.parse("quay.io/x").normalized()) == "quay.io/x"


@pytest.mark.parametrize("text", ["", "Nginx", "app:", "app:-bad", "a//b", "app@sha256:short", "bad_host!/x"])
def test_rejects_bad_references(text: str) -> None:
    with pytest.raises(ValueError):
        ImageRef.parse(text)


# --- registry mapping (restore spec) ------------------------------------------------------------

MAPPING = {"docker.io/library/": "registry.example.com/my-registry/"}


def test_registry_mapping_replaces_the_prefix() -> None:
    assert map_registry("docker.io/library/app1:v1", MAPPING) == "registry.example.com/my-registry/app1:v1"


def test_registry_mapping_matches_short_docker_hub_names() -> None:
    assert map_registry("app1:v1", MAPPING) == "registry.example.com/my-registry/app1:v1"
    assert map_registry("library/app1", MAPPING) == "registry.example.com/my-registry/app1"


def test_registry_mapping_leaves_other_registries() -> None:
    assert map_registry("quay.io/team/app1:v1", MAPPING) == "quay.io/team/app1:v1"
    assert map_registry("bitnami/redis:7", MAPPING) == "bitnami/redis:7"


def test_registry_mapping_uses_the_longest_prefix_and_boundaries() -> None:
    mapping = {"docker.io": "mirror.local", "docker.io/library/": "registry.example.com/lib/"}
    assert map_registry("docker.io/library/nginx", mapping) == "registry.example.com/lib/nginx"
    assert map_registry("docker.io/bitnami/redis", mapping) == "mirror.local/bitnami/redis"
    assert map_registry("docker.iox/a/b", mapping) == "docker.iox/a/b"


def test_empty_registry_mapping_is_identity() -> None:
    assert map_registry("anything at all", {}) == "anything at all"


# --- rule forms ---------------------------------------------------------------------------------


def rewrite(rule: str, image: str) -> str:
    new, _ = parse_image_rules({"case1": rule}).rewrite(image)
    return new


def test_repository_and_tag_form() -> None:
    rule = "app1:v1,app2:v2"
    assert parse_rule("case1", rule).form is RuleForm.repository_and_tag
    assert rewrite(rule, "docker.io/library/app1:v1") == "docker.io/library/app2:v2"
    assert rewrite(rule, "app1:v1") == "app2:v2"
    assert rewrite(rule, "registry.example.com/team/app1:v1") == "registry.example.com/team/app2:v2"
    # other tags, other repositories and mere substrings are left alone
    assert rewrite(rule, "app1:v10") == "app1:v10"
    assert rewrite(rule, "myapp1:v1") == "myapp1:v1"
    assert rewrite(rule, "app1") == "app1"  # implicitly :latest


def test_repository_form_keeps_the_tag() -> None:
    rule = "app1,app2"
    assert parse_rule("case1", rule).form is RuleForm.repository
    assert rewrite(rule, "docker.io/library/app1:v1") == "docker.io/library/app2:v1"
    assert rewrite(rule, "app1") == "app2"
    assert rewrite(rule, f"app1@{DIGEST}") == f"app2@{DIGEST}"
    assert rewrite(rule, "app1x:v1") == "app1x:v1"
    assert rewrite(rule, "app1/sidecar:v1") == "app1/sidecar:v1"


def test_repository_form_with_a_path() -> None:
    assert (
        rewrite("team/app1,other/app9", "registry.example.com/team/app1:v3")
        == "registry.example.com/other/app9:v3"
    )
    assert (
        rewrite("team/app1,other/app9", "registry.example.com/xteam/app1:v3")
        == "registry.example.com/xteam/app1:v3"
    )


def test_tag_form_changes_any_repository() -> None:
    rule = "v1:v2"
    assert parse_rule("case1", rule).form is RuleForm.tag
    assert rewrite(rule, "docker.io/library/app1:v1") == "docker.io/library/app1:v2"
    assert rewrite(rule, "quay.io/x/y:v1") == "quay.io/x/y:v2"
    assert rewrite(rule, "app1:v10") == "app1:v10"
    assert rewrite(rule, "v1:v3") == "v1:v3"  # a repository named like the tag is not a tag


def test_tag_form_matches_the_implicit_latest() -> None:
    assert rewrite("latest:stable", "nginx") == "nginx:stable"


def test_registry_qualified_form_only_touches_that_registry() -> None:
    rule = "docker.io/library/app1:v1,registry.cn-beijing.aliyuncs.com/my-registry/app2:v2"
    assert parse_rule("case1", rule).form is RuleForm.registry_qualified
    assert (
        rewrite(rule, "docker.io/library/app1:v1") == "registry.cn-beijing.aliyuncs.com/my-registry/app2:v2"
    )
    assert rewrite(rule, "app1:v1") == "registry.cn-beijing.aliyuncs.com/my-registry/app2:v2"
    assert rewrite(rule, "quay.io/library/app1:v1") == "quay.io/library/app1:v1"
    assert rewrite(rule, "docker.io/library/app1:v2") == "docker.io/library/app1:v2"


def test_registry_qualified_without_tags_keeps_the_tag() -> None:
    rule = "quay.io/team/app1,registry.example.com/mirror/app1"
    assert rewrite(rule, "quay.io/team/app1:v7") == "registry.example.com/mirror/app1:v7"


def test_qualified_new_side_moves_matching_images_anywhere() -> None:
    assert (
        rewrite("app1:v1,registry.example.com/team/app2:v2", "quay.io/x/app1:v1")
        == "registry.example.com/team/app2:v2"
    )


def test_faq_example_all_forms_on_one_image() -> None:
    image = "docker.io/library/app1:v1"
    assert rewrite("app1:v1,app2:v2", image) == "docker.io/library/app2:v2"
    assert rewrite("app1,app2", image) == "docker.io/library/app2:v1"
    assert rewrite("v1:v2", image) == "docker.io/library/app1:v2"
    assert (
        rewrite("docker.io/library/app1:v1,registry.cn-beijing.aliyuncs.com/my-registry/app2:v2", image)
        == "registry.cn-beijing.aliyuncs.com/my-registry/app2:v2"
    )


def test_whitespace_around_rules_is_ignored() -> None:
    assert rewrite("  app1:v1 ,  app2:v2 ", "app1:v1") == "app2:v2"
    assert rewrite(" v1 : v2 ", "app1:v1") == "app1:v2"


def test_tag_change_drops_a_digest_with_a_warning() -> None:
    new, warnings = parse_image_rules({"case1": "v1:v2"}).rewrite(f"app1:v1@{DIGEST}")
    assert new == "app1:v2"
    assert len(warnings) == 1 and "digest dropped" in warnings[0] and "case1" in warnings[0]


def test_first_rule_in_key_order_wins_and_results_are_not_rewritten_again() -> None:
    rules = parse_image_rules({"case2": "app2,app3", "case1": "app1,app2", "case3": "v1:v9"})
    assert [r.key for r in rules.rules] == ["case1", "case2", "case3"]
    assert rules.rewrite("app1:v1") == ("app2:v1", [])
    assert rules.rewrite("app2:v1") == ("app3:v1", [])
    assert rules.rewrite("other:v1") == ("other:v9", [])
    swap = parse_image_rules({"a": "blue,green", "b": "green,blue"})
    assert swap.rewrite("blue:1")[0] == "green:1"
    assert swap.rewrite("green:1")[0] == "blue:1"


def test_unparseable_images_are_left_with_a_warning() -> None:
    new, warnings = parse_image_rules({"case1": "v1:v2"}).rewrite("Not/An:Image:x")
    assert new == "Not/An:Image:x"
    assert "left unchanged" in warnings[0]


def test_no_rules_no_work() -> None:
    assert parse_image_rules({}).rewrite("Anything") == ("Anything", [])


# --- bad rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("", "empty"),
        ("app1", "expected 'old,new'"),
        ("v1:v2:v3", "expected 'old,new'"),
        ("registry.example.com/app:v1", "expected 'old,new'"),
        ("v1:", "not a valid tag"),
        ("v1:v1", "changes nothing"),
        ("app1,app2,app3", "exactly one ','"),
        ("app1:v1,", "new image is empty"),
        (",app2", "old image is empty"),
        ("app1:v1,app2", "old image has a tag but the new one has none"),
        ("app1,app2:v2", "new image has a tag but the old one has none"),
        ("App1,app2", "old image 'App1' is invalid"),
        ("app1,app2:", "new image 'app2:' is invalid"),
        (f"app1@{DIGEST},app2", "digest"),
        ("docker.io/library/,registry.example.com/lib/", "image_registry_mapping"),
        ("app1:v1,app1:v1", "changes nothing"),
    ],
)
def test_bad_rules_are_named_in_the_error(rule: str, reason: str) -> None:
    with pytest.raises(BackupCenterError) as caught:
        parse_image_rules({"good": "app1,app2", "case7": rule})
    err = caught.value
    assert err.code == "ImageRuleInvalid"
    assert "case7" in err.message
    assert repr(rule) in err.message
    assert reason in err.message
    assert err.info().fixes  # describe can tell the operator the valid forms


def test_rules_survive_serialization() -> None:
    rules = parse_image_rules({"a": "app1:v1,app2:v2", "b": "v1:v2", "c": "quay.io/x/a,quay.io/y/b"})
    again = type(rules).model_validate_json(rules.model_dump_json())
    assert again == rules
    assert again.rewrite("app1:v1") == ("app2:v2", [])
