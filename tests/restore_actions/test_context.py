"""The restore context: built from the spec plus what the workflow learnt about the target."""

from kube.restore.context import RestoreContext
from kube.restore.images import parse_image_rules
from schemas.specs import RestoreSpec

from .objects import CLASSES


def test_from_spec_and_serialization() -> None:
    spec = RestoreSpec(
        name="r1",
        backup="b1",
        vault="v1",
        namespace_mapping={"shop": "shop2"},
        storage_class_mapping={"alicloud-nas": "alicloud-disk-essd"},
        image_registry_mapping={"docker.io/library/": "registry.example.com/lib/"},
        convert_to_access_modes=["ReadWriteOnce"],
        preserve_node_ports=True,
    )
    ctx = RestoreContext.from_spec(
        spec,
        storage_classes=CLASSES,
        default_storage_class="alicloud-disk-essd",
        image_rules=parse_image_rules({"a": "v1:v2"}),
        pv_renames={"d-1": "d-1"},
    )
    assert ctx.restore_name == "r1" and ctx.backup_name == "b1"
    assert ctx.convert_to_access_modes == ("ReadWriteOnce",)
    assert ctx.preserve_node_ports is True
    assert ctx.map_namespace("shop") == "shop2" and ctx.map_namespace("web") == "web"
    assert ctx.is_disk_class("alicloud-disk-essd") and not ctx.is_disk_class("alicloud-nas")
    assert not ctx.is_disk_class(None) and not ctx.knows_class("")
    again = RestoreContext.model_validate_json(ctx.model_dump_json())
    assert again == ctx
    assert again.image_rules.rewrite("app:v1") == ("app:v2", [])


def test_defaults_preserve_node_ports() -> None:
    # By default only explicitly set node ports are kept (the spec and the context agree).
    assert RestoreContext(restore_name="r", backup_name="b").preserve_node_ports is False
    spec = RestoreSpec(name="r", backup="b", vault="v")
    assert spec.preserve_node_ports is False
    assert RestoreContext.from_spec(spec).preserve_node_ports is False
