"""The data mover's directory walk in native code (see datamover/walk.py)."""

import os
from collections.abc import Iterator

class Walker(Iterator[list[tuple[str, str, os.stat_result | None, OSError | None]]]):
    """Batches of walk items for everything under root (root's own item is the caller's)."""

    def __init__(self, root: str, root_prefix: str) -> None: ...
    def __next__(self) -> list[tuple[str, str, os.stat_result | None, OSError | None]]: ...
