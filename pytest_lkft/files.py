"""Files written so that a reader never sees half of one (xdist workers, pre-boot thread).

The one way the package publishes a file: write it under a unique temporary name beside
its final path, then rename it over that path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path


def partial_path(path: Path) -> Path:
    """A temporary name beside `path`, unique per process and thread."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")


@contextlib.contextmanager
def atomically(path: Path) -> Iterator[Path]:
    """Yield the temporary path to write `path`'s content to; rename it over `path` when
    the block ends, remove it when the block raises."""
    partial = partial_path(path)
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: bytes | str | Path, mode: int | None = None) -> Path:
    """Write `data` (bytes, text, or a copy of the file at a Path) to `path` atomically."""
    with atomically(path) as partial:
        if isinstance(data, Path):
            shutil.copyfile(data, partial)
        elif isinstance(data, str):
            partial.write_text(data)
        else:
            partial.write_bytes(data)
        if mode is not None:
            partial.chmod(mode)
    return path


def tree_size(path: Path) -> int:
    """Bytes of the files under `path`, each inode once (hard links counted once)."""
    seen: set[int] = set()
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            info = os.lstat(os.path.join(root, name))
            if info.st_ino not in seen:
                seen.add(info.st_ino)
                total += info.st_size
    return total
