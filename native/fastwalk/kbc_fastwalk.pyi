"""The data mover's directory walk in native code (see datamover/walk.py)."""

import os
from collections.abc import Container, Iterable, Iterator
from typing import Any

class Walker(Iterator[list[tuple[str, str, os.stat_result | None, OSError | None]]]):
    """Batches of walk items for everything under root (root's own item is the caller's)."""

    def __init__(self, root: str, root_prefix: str) -> None: ...
    def __next__(self) -> list[tuple[str, str, os.stat_result | None, OSError | None]]: ...

# (None, rows, count, files, bytes, chunks, dirs)
# or (rel, path, stat or None, error or None, the parent's row or None)
ScanItem = tuple[Any, ...]

class Scan(Iterator[list[ScanItem]]):
    """The walk merged with a parent snapshot's rows: directories and unchanged files as encoded
    rows, the rest as walk items with the parent's row (msgpack) for each."""

    def __init__(
        self, root: str, root_prefix: str, parent_frames: Iterable[bytes], stored: Container[bytes]
    ) -> None: ...
    def __next__(self) -> list[ScanItem]: ...
