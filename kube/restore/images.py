"""Container image references and the two ways a restore rewrites them (requirements.md §8).

1. ``image_registry_mapping`` of the restore spec: prefix replacement, e.g. ``docker.io/library/``
   -> ``registry.example.com/my-registry/``.
2. Image rewrite rules, set once per cluster in a ConfigMap whose data values are rules:

   ========================  ====================================================================
   ``app1:v1,app2:v2``       repository and tag: ``docker.io/library/app1:v1`` -> ``…/app2:v2``
   ``app1,app2``             repository only, the tag is kept: ``…/app1:v1`` -> ``…/app2:v1``
   ``v1:v2``                 tag only, any repository: ``…/app1:v1`` -> ``…/app1:v2``
   ``docker.io/library/app1:v1,registry.example.com/team/app2:v2``
                             registry-qualified: only images of that registry (and repository)
   ========================  ====================================================================

Unlike a substring replacement, rules match whole reference parts: ``app1`` matches the last
path components of a repository (``library/app1``, never ``myapp1``) and tags match whole tags.
Short references are read the way container runtimes read them (``nginx`` is
``docker.io/library/nginx:latest``), so ``docker.io/library/…`` rules match ``nginx:1.25``.
Rules are tried in the order of their ConfigMap keys; the first that matches rewrites the image
and no other rule applies to the result (so ``a,b`` and ``b,a`` together swap nothing twice).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict

from schemas.errors import BackupCenterError

DEFAULT_REGISTRY = "docker.io"
_LEGACY_DEFAULT_REGISTRIES = ("index.docker.io", "registry-1.docker.io")

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::\d+)?$")


class ImageRef(BaseModel):
    """A parsed image reference: ``[registry/]repository[:tag][@digest]``."""

    model_config = ConfigDict(frozen=True)

    registry: str = ""  # "" when the reference names none (Docker Hub implied)
    repository: str
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, text: str) -> Self:
        """Raises ValueError saying what is wrong with the reference."""
        rest, _, digest = text.strip().partition("@")
        if digest and not _DIGEST.match(digest):
            raise ValueError(f"{digest!r} is not a digest (algorithm:hex)")
        registry = ""
        first, slash, remainder = rest.partition("/")
        # As in the runtimes: the first component is a registry host only if it looks like one.
        if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
            if not _HOST.match(first):
                raise ValueError(f"{first!r} is not a registry host")
            registry, rest = first, remainder
        repository, colon, tag = rest.rpartition(":") if ":" in rest else (rest, "", "")
        if colon and not _TAG.match(tag):
            raise ValueError(f"{tag!r} is not a valid tag")
        if not repository:
            raise ValueError("no repository name")
        for part in repository.split("/"):
            if not _COMPONENT.match(part):
                raise ValueError(f"{part!r} is not a valid repository path component (lowercase letters, "
                                 "digits and . _ - separators)")
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    def normalized(self) -> ImageRef:
        """Docker Hub spelled out: ``nginx`` -> ``docker.io/library/nginx``."""
        registry = self.registry or DEFAULT_REGISTRY
        if registry in _LEGACY_DEFAULT_REGISTRIES:
            registry = DEFAULT_REGISTRY
        repository = self.repository
        if registry == DEFAULT_REGISTRY and "/" not in repository:
            repository = f"library/{repository}"
        return self.model_copy(update={"registry": registry, "repository": repository})

    def effective_tag(self) -> str:
        # A digest pins the content; without one the runtime pulls ``latest``.
        return self.tag or ("" if self.digest else "latest")

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _shorten_like(result: ImageRef, original: ImageRef) -> ImageRef:
    """Write a Docker Hub result as short as the original was written (``app2:v2``, not
    ``docker.io/library/app2:v2``), so untouched parts of the manifest read the same."""
    if original.registry or result.registry != DEFAULT_REGISTRY:
        return result
    repository = result.repository
    if not original.repository.startswith("library/") and repository.count("/") == 1 \
            and repository.startswith("library/"):
        repository = repository.removeprefix("library/")
    return result.model_copy(update={"registry": "", "repository": repository})


class RuleForm(StrEnum):
    repository_and_tag = "repository-and-tag"
    repository = "repository"
    tag = "tag"
    registry_qualified = "registry-qualified"


class ImageRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str  # the ConfigMap data key, named in messages
    text: str
    form: RuleForm
    old: ImageRef | None = None  # None for the tag-only form
    new: ImageRef | None = None
    old_tag: str = ""  # tag-only form
    new_tag: str = ""

    def apply(self, ref: ImageRef) -> tuple[ImageRef, list[str]] | None:
        """The rewritten reference and warnings, or None when the rule does not match."""
        norm = ref.normalized()
        if self.form is RuleForm.tag:
            if norm.effective_tag() != self.old_tag:
                return None
            return _retag(ref, norm, self.new_tag, self)
        assert self.old is not None and self.new is not None
        old = self.old
        if old.registry:
            qualified = old.normalized()
            if (norm.registry, norm.repository) != (qualified.registry, qualified.repository):
                return None
        elif not (norm.repository == old.repository or norm.repository.endswith("/" + old.repository)):
            return None
        if old.tag and norm.effective_tag() != old.tag:
            return None

        if self.new.registry or old.registry:
            # A qualified side names the whole repository: replace it, registry included.
            target = self.new.normalized()
            moved = norm.model_copy(update={"registry": target.registry, "repository": target.repository})
        else:
            prefix = norm.repository[: len(norm.repository) - len(old.repository)]
            moved = norm.model_copy(update={"repository": prefix + self.new.repository})
        if old.tag:
            return _retag(ref, moved, self.new.tag, self)
        return _shorten_like(moved, ref), []


def _retag(original: ImageRef, ref: ImageRef, tag: str, rule: ImageRule) -> tuple[ImageRef, list[str]]:
    warnings = []
    if ref.digest:
        # The digest would keep pulling the old content under the new tag.
        warnings.append(f"image {original}: digest dropped because image rule {rule.key} ({rule.text}) "
                        f"changes the tag to {tag}")
    return _shorten_like(ref.model_copy(update={"tag": tag, "digest": ""}), original), warnings


class ImageRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    rules: tuple[ImageRule, ...] = ()

    def rewrite(self, image: str) -> tuple[str, list[str]]:
        """The image after the first matching rule, and warnings (e.g. an unparseable image)."""
        if not self.rules:
            return image, []
        try:
            ref = ImageRef.parse(image)
        except ValueError as exc:
            return image, [f"image {image!r} left unchanged: not a valid reference ({exc})"]
        for rule in self.rules:
            applied = rule.apply(ref)
            if applied is not None:
                new_ref, warnings = applied
                return str(new_ref), warnings
        return image, []


def _bad(key: str, rule: str, reason: str) -> BackupCenterError:
    return BackupCenterError("ImageRuleInvalid", key=key, rule=rule, reason=reason)


def _side(key: str, rule: str, which: str, text: str) -> ImageRef:
    if not text:
        raise _bad(key, rule, f"the {which} image is empty")
    if text.endswith("/"):
        raise _bad(key, rule, f"the {which} image {text!r} is a prefix, not an image; "
                              "move registries with the restore's image_registry_mapping")
    try:
        ref = ImageRef.parse(text)
    except ValueError as exc:
        raise _bad(key, rule, f"the {which} image {text!r} is invalid: {exc}") from None
    if ref.digest:
        raise _bad(key, rule, f"the {which} image {text!r} has a digest; rules match repositories and tags")
    return ref


def parse_rule(key: str, text: str) -> ImageRule:
    rule = text.strip()
    if not rule:
        raise _bad(key, text, "the rule is empty")
    if "," not in rule:
        old_tag, colon, new_tag = rule.partition(":")
        if not colon or ":" in new_tag or "/" in rule:
            raise _bad(key, text, "expected 'old,new' (app1:v1,app2:v2 or app1,app2 or "
                                  "registry/app1:v1,registry/app2:v2) or 'oldtag:newtag' (v1:v2)")
        old_tag, new_tag = old_tag.strip(), new_tag.strip()
        for tag in (old_tag, new_tag):
            if not _TAG.match(tag):
                raise _bad(key, text, f"{tag!r} is not a valid tag")
        if old_tag == new_tag:
            raise _bad(key, text, "the rule changes nothing")
        return ImageRule(key=key, text=rule, form=RuleForm.tag, old_tag=old_tag, new_tag=new_tag)

    parts = [p.strip() for p in rule.split(",")]
    if len(parts) != 2:
        raise _bad(key, text, "expected exactly one ',' between the old and the new image")
    old, new = _side(key, text, "old", parts[0]), _side(key, text, "new", parts[1])
    if bool(old.tag) != bool(new.tag):
        tagged, untagged = ("old", "new") if old.tag else ("new", "old")
        raise _bad(key, text, f"the {tagged} image has a tag but the {untagged} one has none; "
                              "give both tags (app1:v1,app2:v2) or neither (app1,app2)")
    if old == new:
        raise _bad(key, text, "the rule changes nothing")
    if old.registry or new.registry:
        form = RuleForm.registry_qualified
    else:
        form = RuleForm.repository_and_tag if old.tag else RuleForm.repository
    return ImageRule(key=key, text=rule, form=form, old=old, new=new)


def parse_image_rules(configmap_data: dict[str, str]) -> ImageRules:
    """Rules from the data of the cluster's image-rewrite ConfigMap, in key order.

    Raises BackupCenterError ``ImageRuleInvalid`` naming the first bad rule's key and text.
    """
    return ImageRules(rules=tuple(parse_rule(key, configmap_data[key]) for key in sorted(configmap_data)))


def map_registry(image: str, mapping: dict[str, str]) -> str:
    """Prefix replacement by the longest matching prefix; short Docker Hub references match
    ``docker.io/library/`` prefixes through their full spelling."""
    if not mapping:
        return image
    candidates = [image]
    try:
        full = str(ImageRef.parse(image).normalized())
    except ValueError:
        full = image
    if full != image:
        candidates.append(full)
    for prefix in sorted(mapping, key=len, reverse=True):
        for text in candidates:
            # A prefix must end on a boundary: "docker.io" must not match "docker.iox/…".
            boundary = prefix.endswith("/") or text[len(prefix):][:1] in ("", "/", ":", "@")
            if boundary and text.startswith(prefix):
                return mapping[prefix] + text[len(prefix):]
    return image
