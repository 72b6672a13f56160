"""A process's work with one LAVA lab: artifacts to URLs, jobs in flight, cancelling.

Lifecycle: `LavaSession(options, cache_root)` per pytest process (each xdist worker has
its own). `suite_device(...)` makes the `LavaDevice` of a suite run with its job maker;
`upcoming(devices)` lists the suite runs this process will run next, and `take(device)`,
when a suite run starts, submits its job and those of the next runs until `options.jobs`
are in flight (waiting on a lab costs no local CPU). `close()` cancels every job this
process submitted that has not finished, and stops the artifact server if it started
one. A lab that could not be reached for the client's whole retry time is remembered:
later suite runs fail at once with the same line instead of waiting again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pytest_lkft.artifacts.publish import ROUTE
from pytest_lkft.devices.crash import CrashDetector
from pytest_lkft.devices.lava.client import DEFAULT_RETRY_FOR, LabUnreachable, LavaClient
from pytest_lkft.devices.lava.device import LavaDevice
from pytest_lkft.devices.lava.job import LavaJob
from pytest_lkft.devices.lava.jobs import JobInputs, Step, command_line, qemu_context, render_job
from pytest_lkft.devices.lava.publish import (
    LAVA_COMPRESSION,
    Publisher,
    initramfs,
    lab_url,
    nfs_rootfs,
)
from pytest_lkft.devices.lava.specs import LavaSpec
from pytest_lkft.errors import UserError
from pytest_lkft.provision.device import DeviceArtifacts
from pytest_lkft.provision.rootfs import compression as file_compression
from pytest_lkft.provision.rootfs import rootfs_kind
from pytest_lkft.settings.device import Timeouts, banner_hidden

DEFAULT_QUEUE_TIMEOUT = 3600.0
DEFAULT_SERVE = "127.0.0.1:0"


@dataclass(frozen=True)
class LavaOptions:
    """How to reach the lab and how to use it."""

    url: str
    token: str = field(repr=False)
    jobs: int = 1
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT
    retry_for: float = DEFAULT_RETRY_FOR
    artifacts_url: str | None = None  # base URL of <cache>/published, served by the user
    serve: str = DEFAULT_SERVE  # else: where this process serves them itself
    kisscache: str | None = None


@dataclass(frozen=True)
class Sources:
    """Where the user's artifacts came from (URLs go to the lab as they are)."""

    kernel: str | None = None
    rootfs: str | None = None
    dtb: str | None = None


class ArtifactServer:
    """The cache server (`lkft cache serve`) in a thread of this process, for published
    files only (it fetches nothing upstream)."""

    def __init__(self, cache_root: Path, bind: str) -> None:
        from pytest_lkft.artifacts.cache import ArtifactCache
        from pytest_lkft.artifacts.server import CacheServer, HostPolicy, parse_bind

        self.server = CacheServer(ArtifactCache(cache_root), parse_bind(bind), HostPolicy([]))
        host, port = self.server.server_address[:2]
        self.base = f"http://{host!s}:{port}{ROUTE.rstrip('/')}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="lkft-lava-artifacts", daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class LabUrls(NamedTuple):
    """Where the lab fetches a device's artifacts (LAVA's compression words)."""

    kernel: str
    ramdisk: str | None  # None: the root is `nfsrootfs`
    ramdisk_compression: str | None
    dtb: str | None
    nfsrootfs: str | None = None


class LabArtifacts:
    """A device's artifacts as the lab fetches them: URLs as they are (through KissCache
    when a prefix is set), local files published (`publish.Publisher`, made on first use)."""

    def __init__(self, cache_root: Path, kisscache: str | None,
                 publisher: Callable[[], Publisher]) -> None:
        self.cache_root, self.kisscache, self.publisher = cache_root, kisscache, publisher
        self._urls: dict[tuple[int, bool], LabUrls] = {}

    def urls(self, artifacts: DeviceArtifacts, sources: Sources, nfs: bool = False) -> LabUrls:
        """The URLs of a device's artifacts; with `nfs`, the root file system as an NFS
        root tarball instead of an initramfs."""
        key = (id(artifacts), nfs)
        if key not in self._urls:
            self._urls[key] = self._resolve(artifacts, sources, nfs)
        return self._urls[key]

    def _url(self, path: Path, source: str | None) -> str:
        if source and source.startswith(("http://", "https://")):
            return lab_url(source, self.kisscache)
        return self.publisher().publish(path)

    def _resolve(self, artifacts: DeviceArtifacts, sources: Sources, nfs: bool) -> LabUrls:
        rootfs, overlays = artifacts.ramdisk_parts(self.cache_root)
        if rootfs is None or rootfs_kind(rootfs) != "cpio":
            raise UserError(f"{rootfs}: LAVA devices boot a cpio initramfs; pass "
                            "--lkft-rootfs as a cpio archive (or nothing, for the busybox one)")
        kernel = self._url(artifacts.kernel, sources.kernel)
        dtb = self._url(artifacts.dtb, sources.dtb) if artifacts.dtb is not None else None
        if nfs:
            tarball = nfs_rootfs(rootfs, overlays, self.cache_root)
            return LabUrls(kernel, None, None, dtb, self._url(tarball, None))
        ramdisk, compression = initramfs(rootfs, overlays, self.cache_root)
        return LabUrls(kernel, self._url(ramdisk, sources.rootfs if ramdisk == rootfs else None),
                       compression, dtb)


def job_inputs(spec: LavaSpec, urls: LabUrls, artifacts: DeviceArtifacts, timeouts: Timeouts,
               suite: str, queue_timeout: float) -> JobInputs:
    """Everything a job of `spec` needs but its steps."""
    kernel, ramdisk, compression, dtb, nfsrootfs = urls
    need_dtb(spec, dtb)
    context: dict[str, Any] = qemu_context(spec.qemu, spec.template) if spec.qemu else {}
    return JobInputs(
        device_type=spec.device_type, job_name=f"lkft {suite} on {spec.name}",
        kernel_url=kernel, ramdisk_url=ramdisk, ramdisk_compression=compression,
        nfsrootfs_url=nfsrootfs,
        dtb_url=dtb, kernel_compression=kernel_compression(artifacts.kernel),
        command_line=command_line(spec.console, artifacts.boot_args),
        console=spec.console, boot_args=extra_kernel_args(spec, artifacts.boot_args),
        boot_timeout=timeouts.boot, queue_timeout=queue_timeout,
        prompts=list(artifacts.prompts or spec.prompts) or ["/ # "],
        kernel_start_message=kernel_start_message(spec, artifacts), context=context,
        metadata={"lkft.suite": suite, "lkft.device": spec.name}, values=dict(spec.values))


def nfs_root(spec: LavaSpec) -> bool:
    """True when the device boots its root over NFS (its template's `root: nfs`)."""
    return spec.values.get("root") == "nfs"


def extra_kernel_args(spec: LavaSpec, boot_args: str) -> str:
    """The job's extra kernel arguments for a lab that builds the command line: "" (the
    device type's own) without --lkft-boot-args, else the device type's own (the table's
    `kernel_args`, which LAVA's extra_kernel_args replaces), then the user's."""
    if not boot_args.strip():
        return ""
    return " ".join(filter(None, [spec.kernel_args.strip(), boot_args.strip()]))


def kernel_start_message(spec: LavaSpec, artifacts: DeviceArtifacts) -> str | None:
    """LAVA's kernel-start-message: the user's, else the device's; "" (wait only for the
    prompt, as local runs do) when the boot arguments hide the kernel's banner; else None
    (the LAVA device type's own)."""
    if artifacts.kernel_start_message:
        return artifacts.kernel_start_message
    if spec.kernel_start_message is not None:
        return spec.kernel_start_message
    if banner_hidden(f"{spec.kernel_args} {artifacts.boot_args}"):
        return ""
    return None


def kernel_compression(kernel: Path) -> str | None:
    """LAVA's word for the kernel file's compression (gz, xz); None when it is raw, or not
    here to look at (a test's inputs)."""
    try:
        return LAVA_COMPRESSION.get(file_compression(kernel))
    except OSError:
        return None


def need_dtb(spec: LavaSpec, dtb: str | None, default_kernel: bool = False) -> None:
    """A UserError when the device boots with a device tree (its `dtb` value) and none
    was given (`dtb`: its URL or path, or None), unless it boots its default kernel
    (`default_kernel`), whose package has the device tree (the table's `debian_flavour`)."""
    name = spec.values.get("dtb")
    if default_kernel and has_default_dtb(spec):
        return
    if name and not dtb:
        raise UserError(f"{spec.name} boots with a device tree and none was given: pass "
                        f"--lkft-dtb (`lkft lava job --dtb`), {name} of your kernel build "
                        f"(arch/{spec.arch}/boot/dts/{name}), as a path or URL")


def has_default_dtb(spec: LavaSpec) -> bool:
    """True when the device's default kernel comes with its device tree."""
    debian = spec.boots.debian if spec.boots is not None else None
    return debian is not None and debian.dtb is not None


class LavaSession:
    """This process's LAVA lab; see the module docstring."""

    def __init__(self, options: LavaOptions, cache_root: Path) -> None:
        self.options, self.cache_root = options, cache_root
        self.client = LavaClient(options.url, options.token, retry_for=options.retry_for)
        self.jobs: list[LavaJob] = []
        self.waiting: list[LavaDevice] = []  # suite runs of this process, not started yet
        self.server: ArtifactServer | None = None
        self._publisher: Publisher | None = None
        self.artifacts = LabArtifacts(cache_root, options.kisscache, self.publisher)
        self._lock = threading.Lock()

    def publisher(self) -> Publisher:
        """Where local files are published: the given base URL, or our own server."""
        if self._publisher is None:
            base = self.options.artifacts_url
            if base is None:
                self.server = ArtifactServer(self.cache_root, self.options.serve)
                base = self.server.base
            self._publisher = Publisher(self.cache_root, base)
        return self._publisher

    def job_inputs(self, spec: LavaSpec, artifacts: DeviceArtifacts, sources: Sources,
                   timeouts: Timeouts, suite: str) -> JobInputs:
        """Everything a job of `spec` needs but its steps."""
        urls = self.artifacts.urls(artifacts, sources, nfs_root(spec))
        return job_inputs(spec, urls, artifacts, timeouts, suite, self.options.queue_timeout)

    def suite_device(self, spec: LavaSpec, inputs: JobInputs, steps: list[Step],
                     run_dir: Path, metadata: dict[str, str]) -> LavaDevice:
        """The LavaDevice of one suite run (its job is not submitted yet)."""
        def make_job(job_steps: list[Step], detector: CrashDetector, log_name: str) -> LavaJob:
            definition = render_job(spec.template, _with_steps(inputs, job_steps))
            return self.submit(definition, run_dir, detector, job_steps, log_name)

        return LavaDevice(spec, steps, make_job, run_dir,
                          {**metadata, "lava_url": self.client.url,
                           "lava_device_type": spec.device_type})

    def submit(self, definition: str, run_dir: Path, detector: CrashDetector,
               steps: list[Step], log_name: str = "lava-log.yaml") -> LavaJob:
        """A started job (or one failed at once when the lab was found unreachable)."""
        job = LavaJob(self.client, definition, run_dir, detector,
                      [f"{s.suite}/{s.name}" for s in steps], self.options.queue_timeout,
                      log_name, read_tests=bool(steps))
        with self._lock:
            self.jobs.append(job)
        unreachable = self.unreachable()
        if unreachable:
            job.abandon(unreachable)
        else:
            job.start()
        return job

    def unreachable(self) -> str:
        """The line of a job that found the lab unreachable, or ""."""
        with self._lock:
            return next((j.error for j in self.jobs if j.unreachable), "")

    def upcoming(self, devices: list[LavaDevice]) -> None:
        """The suite runs this process will run next, in order (not started yet)."""
        self.waiting = [d for d in devices if d.job is None]

    def take(self, device: LavaDevice) -> None:
        """A suite run starts: its job, then the next ones, up to `options.jobs` in flight."""
        if device in self.waiting:
            self.waiting.remove(device)
        device.start()
        while self.waiting and self.in_flight() < self.options.jobs:
            self.waiting.pop(0).start()

    def in_flight(self) -> int:
        """Jobs submitted and not finished."""
        with self._lock:
            return sum(1 for job in self.jobs if not job.done.is_set())

    def close(self) -> None:
        """Cancel this process's unfinished jobs; stop the artifact server."""
        self.cancel_all()
        if self.server is not None:
            self.server.close()
            self.server = None

    def cancel_all(self) -> list[int]:
        """Ask LAVA to cancel every job of this process that has not finished; their ids."""
        with self._lock:
            pending = [job for job in self.jobs if not job.done.is_set()]
        for job in pending:
            job.cancel()
        return [job.id for job in pending if job.id is not None]


def _with_steps(inputs: JobInputs, steps: list[Step]) -> JobInputs:
    from dataclasses import replace

    return replace(inputs, steps=list(steps))


__all__ = ["LabUnreachable", "LavaOptions", "LavaSession", "Sources"]
