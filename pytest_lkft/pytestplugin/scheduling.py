"""xdist scheduling: all of a device's tests on one worker, devices spread over workers.

xdist's own `--dist loadgroup` rewrites node ids on the workers, which pytest 9.2 no
longer allows (`Node.nodeid` became read-only), so the groups silently vanish. Here the
controller groups node ids itself, by the device name that starts each test's
parameter id (`test_smoke[qemu-arm64-uname]`), on top of xdist's LoadScopeScheduling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def device_of(nodeid: str, devices: Sequence[str]) -> str | None:
    """The device a node id runs on, from its parameter id, or None."""
    params = nodeid.rpartition("[")[2].rstrip("]") if nodeid.endswith("]") else ""
    for name in sorted(devices, key=len, reverse=True):  # qemu-arm64be before qemu-arm64
        if params == name or params.startswith(f"{name}-"):
            return name
    return None


def make_scheduler(config: Any, log: Any, devices: Sequence[str]) -> Any:
    """A LoadScopeScheduling whose scope is the device (tests without one are free)."""
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class DeviceScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """One work unit per device: its suites run in order on one worker."""

        def _split_scope(self, nodeid: str) -> str:
            return device_of(nodeid, devices) or nodeid

    return DeviceScheduling(config, log)
