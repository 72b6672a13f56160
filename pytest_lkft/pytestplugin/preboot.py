"""Boot the first device while pytest is still collecting.

Without xdist, the first suite that needs the first `--lkft-device` would otherwise start
QEMU only after collection and fixture set-up; booting it in a thread from
pytest_sessionstart hides that time behind the boot (issue 2: the harness may add at most
10% to the bare QEMU boot). The first suite run of that device claims the booted device
and its run directory is moved to the suite's; if no suite claims it, it is stopped at
the end of the session. Set `LKFT_PREBOOT=0` to turn it off.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

from pytest_lkft.devices.console import TextSink
from pytest_lkft.devices.qemu import QemuDevice
from pytest_lkft.errors import LkftError
from pytest_lkft.provision.device import Fetch, provision
from pytest_lkft.provision.stages import Stage
from pytest_lkft.pytestplugin.provisioning import Provisioned, ProvisionFailure
from pytest_lkft.settings.device import Settings
from pytest_lkft.settings.devices import load_devices


class Preboot:
    """One device booting in the background until a suite claims it."""

    def __init__(self, settings: Settings, name: str, fetch: Fetch, cache_root: Path,
                 stream: TextSink | None, artifacts: dict[str, Provisioned],
                 stages: Sequence[Stage]) -> None:
        self.settings, self.name, self.fetch, self.cache_root = settings, name, fetch, cache_root
        self.stream, self.artifacts, self.stages = stream, artifacts, stages
        self.run_dir = settings.results_dir / name / ".preboot"
        self.device: QemuDevice | None = None
        self.claimed = False
        self.thread = threading.Thread(target=self._boot, name=f"lkft-preboot-{name}",
                                       daemon=True)
        self.thread.start()

    def _boot(self) -> None:
        try:
            found = provision(self.settings, load_devices().get(self.name), self.fetch,
                              self.cache_root, self.stages)
        except (LkftError, OSError) as error:  # the suite's fixture reports it, once
            self.artifacts[self.name] = ProvisionFailure(f"{self.name}: {error}")
            return
        self.artifacts[self.name] = found
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.device = QemuDevice(load_devices().get(self.name), found, self.run_dir,
                                 self.settings.timeouts, self.stream)
        self.device.boot()  # keeps its own failures in boot_error

    def claim(self, name: str, run_dir: Path) -> QemuDevice | None:
        """The booted device for the first suite run of `name`, moved to `run_dir`."""
        if self.claimed or name != self.name:
            return None
        self.claimed = True
        self.thread.join()
        if self.device is None:
            return None
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.run_dir, run_dir)
        self.device.relocate(run_dir)
        return self.device

    def close(self) -> None:
        """Stop a device no suite claimed, without waiting for its boot to end."""
        if self.claimed:
            return
        device = self.device
        if device is not None and device.console is not None:
            device.console.stop()  # the booting thread then sees EOF and returns
        self.thread.join()
        if self.device is not None:
            self.device.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def wanted(settings: Settings, collect_only: bool, xdist: bool) -> bool:
    """Pre-boot only plain runs with a device, unless LKFT_PREBOOT=0."""
    return (bool(settings.devices) and not collect_only and not xdist
            and os.environ.get("LKFT_PREBOOT", "1") != "0")
