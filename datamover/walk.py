"""Walking a volume in manifest order: depth first, names sorted (see manifest.path_key)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from stat import S_ISDIR

# (relative path, full path, lstat or None, the error when there is no lstat)
WalkItem = tuple[str, str, os.stat_result | None, OSError | None]


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def walk(root: str) -> Iterator[WalkItem]:
    """Every entry under root (root itself as "."), with its lstat.

    An entry that vanishes between listing and stat, or a directory that cannot be listed,
    comes back with an error instead of an lstat rather than being skipped silently.  Iterative
    (a stack of directory listings): one generator frame per item, not one per level of depth.
    """
    yield ".", root, os.lstat(root), None
    stack = [_children(root, "")]
    while stack:
        for item in stack[-1]:
            yield item
            st = item[2]
            if st is not None and S_ISDIR(st.st_mode):
                stack.append(_children(item[1], item[0] + "/"))
                break
        else:
            stack.pop()


def _children(path: str, rel_prefix: str) -> Iterator[WalkItem]:
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=_name)
    except OSError as exc:
        yield rel_prefix.rstrip("/") or ".", path, None, exc
        return
    for entry in entries:
        rel = rel_prefix + entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            yield rel, entry.path, None, exc
            continue
        yield rel, entry.path, st, None
