"""Walking a volume in manifest order: depth first, names sorted (see manifest.path_key)."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from stat import S_ISDIR

try:
    # The same walk in native code, on its own thread (native/fastwalk); built by `make venv`.
    # Scan: that walk merged with a parent snapshot's rows (datamover/backup.py _scan).
    from kbc_fastwalk import Scan as NativeScan
    from kbc_fastwalk import Walker as _NativeWalker
except ImportError:  # pragma: no cover - an install without the native part
    _NativeWalker = None  # type: ignore[misc,assignment]
    NativeScan = None  # type: ignore[misc,assignment]

NATIVE = _NativeWalker is not None

# (relative path, full path, lstat or None, the error when there is no lstat)
WalkItem = tuple[str, str, os.stat_result | None, OSError | None]


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _listing(path: str) -> Iterator[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return iter(sorted(it, key=_name))


def walk(root: str, *, native: bool = True) -> Generator[WalkItem, None, None]:
    """Every entry under root (root itself as "."), with its lstat.

    An entry that vanishes between listing and stat, or a directory that cannot be listed,
    comes back with an error instead of an lstat rather than being skipped silently (a directory
    that cannot be listed comes twice: with its lstat, then with the error).  One generator and a
    stack of listings: the hot loop of every backup, so no generator per directory level.

    With the native walker (``native`` and installed) the listing and lstat calls run on a native
    thread, batches ahead of the caller: the same items, while the caller's thread keeps its core.
    """
    yield ".", root, os.lstat(root), None
    if native and _NativeWalker is not None:
        for batch in _NativeWalker(root, os.path.join(root, "")):
            yield from batch
        return
    stack: list[tuple[Iterator[os.DirEntry[str]], str]] = []
    try:
        stack.append((_listing(root), ""))
    except OSError as exc:
        yield ".", root, None, exc
    while stack:
        entries, prefix = stack[-1]
        for entry in entries:
            rel = prefix + entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield rel, entry.path, None, exc
                continue
            yield rel, entry.path, st, None
            if S_ISDIR(st.st_mode):
                try:
                    stack.append((_listing(entry.path), rel + "/"))
                except OSError as exc:
                    yield rel, entry.path, None, exc
                    continue
                break  # descend first; this listing resumes where it stopped
        else:
            stack.pop()
