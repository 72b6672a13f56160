"""`lkft lava job`: print the LAVA job pytest-lkft would submit, without submitting it.

    lkft lava job --device lava:qemu --command 'uname -a' --command 'cat /proc/cmdline'

The kernel and rootfs default to the device's (Debian's kernel, the busybox initramfs),
fetched into the cache as a run does. Local files are published under the cache
(`<cache>/published/`) and named by URL under `--artifacts-url`, by default what `lkft
cache serve` serves on its default address; URLs go as they are, through `--cache-url`
(a KissCache prefix) when given.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pytest_lkft.artifacts.cache import ArtifactCache, default_cache_dir
from pytest_lkft.devices.lava.jobs import Step, render_job
from pytest_lkft.devices.lava.publish import Publisher
from pytest_lkft.devices.lava.session import (
    DEFAULT_QUEUE_TIMEOUT,
    LabArtifacts,
    Sources,
    job_inputs,
    nfs_root,
)
from pytest_lkft.devices.lava.specs import known_names, lava_spec
from pytest_lkft.settings.device import Timeouts
from pytest_lkft.settings.devices import load_devices

DEFAULT_ARTIFACTS_URL = "http://127.0.0.1:8001/lkft/artifacts"  # `lkft cache serve`'s default


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the `job` action to `lkft lava`."""
    actions = parser.add_subparsers(dest="lava_action", required=True, metavar="ACTION")
    job = actions.add_parser("job", help="Print a LAVA job definition (YAML), not submitted")
    job.add_argument("--device", required=True, metavar="lava:NAME",
                     help=f"LAVA device, e.g. lava:qemu (known: {', '.join(known_names())})")
    for option, what in (("--kernel", "Kernel image"), ("--rootfs", "cpio rootfs"),
                         ("--modules", "Modules tarball, put into the initramfs"),
                         ("--dtb", "Device tree blob")):
        job.add_argument(option, metavar="PATH|URL", default=None,
                         help=f"{what} (default: the device's)")
    job.add_argument("--boot-args", default="", help="Extra kernel command line arguments")
    job.add_argument("--kernel-start-message", default="", metavar="REGEX",
                     help="What LAVA waits for as the kernel starts (default: the device's)")
    job.add_argument("--prompts", action="append", default=[], metavar="REGEX",
                     help="Shell prompt LAVA waits for; repeatable (default: the device's)")
    job.add_argument("--command", dest="commands", action="append", default=[], metavar="CMD",
                     help="Shell command to run after boot (repeatable, in order)")
    job.add_argument("--suite", default="commands",
                     help="Suite (LAVA test definition) name (default commands)")
    job.add_argument("--timeouts", default="", metavar="boot=S,test=S",
                     help="Boot and per-command timeouts (default boot=300,test=600)")
    job.add_argument("--queue-timeout", type=float, default=DEFAULT_QUEUE_TIMEOUT,
                     metavar="SECONDS", help="Seconds LAVA keeps the job queued at most")
    job.add_argument("--artifacts-url", default=DEFAULT_ARTIFACTS_URL, metavar="URL",
                     help="Base URL local files are served at (default: `lkft cache serve`'s)")
    job.add_argument("--cache-dir", type=Path, default=None,
                     help="Cache directory (default $LKFT_CACHE_DIR, else ~/.cache/lkft)")
    job.add_argument("--cache-url", default=os.environ.get("LKFT_CACHE_URL"), metavar="PREFIX",
                     help="KissCache prefix the lab fetches URLs through, e.g. "
                     "http://host:8001/api/v1/fetch/?url=%%s")


def run(args: argparse.Namespace) -> int:
    """Print the job."""
    from pytest_lkft.provision.device import provision
    from pytest_lkft.settings.device import Settings, check_regexes

    spec = lava_spec(args.device)
    timeouts = Timeouts.parse(args.timeouts, "--timeouts") if args.timeouts else Timeouts()
    check_regexes({"start": (args.kernel_start_message,), "prompts": tuple(args.prompts)},
                  {"start": "--kernel-start-message", "prompts": "--prompts"})
    settings = Settings(kernel=args.kernel, rootfs=args.rootfs, modules=args.modules,
                        dtb=args.dtb, boot_args=args.boot_args,
                        kernel_start_message=args.kernel_start_message,
                        prompts=tuple(args.prompts))
    root = args.cache_dir or default_cache_dir()
    with ArtifactCache(root) as cache:  # the prefix is the lab's way; this one fetches direct
        artifacts = provision(settings, spec.boots or load_devices().get(spec.provision_as),
                              cache.fetch, cache.root)
        publisher = Publisher(cache.root, args.artifacts_url)
        urls = LabArtifacts(cache.root, args.cache_url, lambda: publisher).urls(
            artifacts, Sources(args.kernel, args.rootfs, args.dtb), nfs_root(spec))
    inputs = job_inputs(spec, urls, artifacts, timeouts, args.suite, args.queue_timeout)
    inputs.steps = [Step(args.suite, f"command-{n}", command, timeouts.test)
                    for n, command in enumerate(args.commands, 1)]
    sys.stdout.write(render_job(spec.template, inputs))
    if any(url and url.startswith(args.artifacts_url)
           for url in (urls.kernel, urls.ramdisk, urls.dtb, urls.nfsrootfs)):
        print(f"lkft lava: local files are published under {root / 'published'}; the lab "
              f"fetches them from {args.artifacts_url} (`lkft cache serve --cache-dir {root}` "
              "serves them there)", file=sys.stderr)
    return 0

