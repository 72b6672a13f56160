"""Files written so that a reader never sees half of one (xdist workers, pre-boot thread)."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def partial_path(path: Path) -> Path:
    """A temporary name beside `path`, unique per process and thread."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")


def write_atomically(path: Path, data: bytes | str, mode: int | None = None) -> Path:
    """Write `data` to a unique temporary file, then rename it over `path`."""
    partial = partial_path(path)
    if isinstance(data, str):
        partial.write_text(data)
    else:
        partial.write_bytes(data)
    if mode is not None:
        partial.chmod(mode)
    os.replace(partial, path)
    return path
