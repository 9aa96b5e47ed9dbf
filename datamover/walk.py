"""Walking a volume in manifest order: depth first, names sorted (see manifest.path_key)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from stat import S_ISDIR


@dataclass(slots=True)
class WalkItem:
    rel: str
    path: str
    st: os.stat_result | None
    error: OSError | None = None


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def walk(root: str) -> Iterator[WalkItem]:
    """Every entry under root (root itself as "."), with its lstat.

    An entry that vanishes between listing and stat, or a directory that cannot be listed,
    comes back with ``error`` set instead of being skipped silently.
    """
    yield WalkItem(".", root, os.lstat(root))
    yield from _walk_dir(root, "")


def _walk_dir(path: str, rel_prefix: str) -> Iterator[WalkItem]:
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=_name)
    except OSError as exc:
        yield WalkItem(rel_prefix.rstrip("/") or ".", path, None, exc)
        return
    for entry in entries:
        rel = rel_prefix + entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            yield WalkItem(rel, entry.path, None, exc)
            continue
        yield WalkItem(rel, entry.path, st)
        if S_ISDIR(st.st_mode):
            yield from _walk_dir(entry.path, rel + "/")
