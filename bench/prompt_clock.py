"""A pytest plugin for bench_boot.py only: when the harness started QEMU and saw the prompt.

Loaded with `-p prompt_clock` (bench/ on PYTHONPATH). It wraps `Console.start` (spawns
QEMU) and `Console._sync` (called right after the shell prompt matched) and appends
`spawn <t>` / `prompt <t>` lines to $LKFT_BENCH_CLOCK, `t` from `time.monotonic()`: the
system-wide monotonic clock, the same in the bench's own process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from pytest_lkft.devices import console


def _stamp(event: str, wrapped: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        with open(os.environ["LKFT_BENCH_CLOCK"], "a") as clock:
            clock.write(f"{event} {time.monotonic()}\n")
        return wrapped(*args, **kwargs)

    return timed


console.Console.start = _stamp("spawn", console.Console.start)  # type: ignore[method-assign]
console.Console._sync = _stamp("prompt", console.Console._sync)  # type: ignore[method-assign]
