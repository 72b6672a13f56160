"""The LAVA device kind: `lava:<device-type>` devices, each suite run one LAVA job.

`LavaKind` is a device kind (see `devicekinds`): it claims `lava:` names, checks the
options and the token (when the lab answers) before anything boots, and makes a
`LavaDevice` for each suite run.

A suite run on a LAVA device is one job. Its commands are known before it boots, from
the suite's items (`suite_steps`): a parsed suite's setup and command (`lkft_parsed`), a
test's commands (`lkft_commands(func)`, func(params) -> commands). When this process
first needs a LAVA device, every suite run of that device it will run is planned (under
xdist a device's suites all run on one worker), and jobs are submitted ahead so that
`--lkft-lava-jobs` are in flight. Every job this process submitted and that has not
finished is cancelled on Ctrl-C, SIGTERM/SIGHUP and at the session's end.
"""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from pytest_lkft.devices.base import Device
from pytest_lkft.devices.console import TextSink
from pytest_lkft.devices.lava.specs import LavaSpec, is_lava, lava_spec
from pytest_lkft.errors import LkftError, UserError
from pytest_lkft.provision.kernelimage import image_banner, kernel_facts
from pytest_lkft.pytestplugin.cache import CACHE_KEY
from pytest_lkft.pytestplugin.naming import case_name, fill_command, suite_name
from pytest_lkft.pytestplugin.options import SETTINGS_KEY, resolver
from pytest_lkft.pytestplugin.provisioning import device_artifacts
from pytest_lkft.settings.devices import QemuSpec, load_devices
from pytest_lkft.settings.options import Resolver

if TYPE_CHECKING:
    from pytest_lkft.devices.lava.device import LavaDevice
    from pytest_lkft.devices.lava.jobs import Step
    from pytest_lkft.devices.lava.session import LavaOptions, LavaSession

# the client's defaults, here so that the plugin's start-up does not import requests
TOKEN_ENV = "LKFT_LAVA_TOKEN"
DEFAULT_RETRY_FOR = 60.0
DEFAULT_QUEUE_TIMEOUT = 3600.0
DEFAULT_SERVE = "127.0.0.1:0"

NO_URL = "{device} needs a LAVA server: pass --lkft-lava-url URL (or set LKFT_LAVA_URL)"
NO_TOKEN = (f"{{device}} needs a LAVA token: set {TOKEN_ENV} to a token of your LAVA user "
            "(it is never printed or stored)")
LAVA_KEY = pytest.StashKey["LavaState"]()
RunKey = tuple[str, str]  # (module path, device name): one device fixture, one job


@dataclass
class LavaState:
    """A process's LAVA devices: specs, the session, the planned suite runs."""

    session: LavaSession
    specs: dict[str, LavaSpec]
    devices: dict[RunKey, LavaDevice] = field(default_factory=dict)
    planned: set[str] = field(default_factory=set)  # device names whose runs are planned
    user: str = ""  # whom the token belongs to, when the lab answered at start


_STATES: list[LavaState] = []  # for signals and atexit, which have no config


def _number(options: Resolver, dest: str, default: float, integer: bool = False) -> float:
    given = options.value(dest)
    if not given:
        return default
    try:
        number = int(given.value) if integer else float(given.value)
    except ValueError:
        number = -1
    if not number > 0:
        kind = "a whole number" if integer else "seconds"
        raise UserError(f"invalid value {given.value!r} from {given.origin}; give {kind} "
                        "above 0")
    return number


def options_from(config: pytest.Config, first: str) -> LavaOptions:
    """The LAVA options, checked; UserError naming the value and what to do."""
    from pytest_lkft.devices.lava.session import LavaOptions

    options = resolver(config)
    url = options.value("lkft_lava_url").value
    if not url:
        raise UserError(NO_URL.format(device=first))
    if not url.startswith(("http://", "https://")):
        raise UserError(f"invalid LAVA URL {url!r}; give the server's http(s) address")
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UserError(NO_TOKEN.format(device=first))
    cache = config.stash[CACHE_KEY]
    return LavaOptions(
        url=url, token=token,
        jobs=int(_number(options, "lkft_lava_jobs", 1, integer=True)),
        queue_timeout=_number(options, "lkft_lava_queue_timeout", DEFAULT_QUEUE_TIMEOUT),
        retry_for=_number(options, "lkft_lava_retry", DEFAULT_RETRY_FOR),
        artifacts_url=options.value("lkft_lava_artifacts_url").value,
        serve=options.value("lkft_lava_serve").value or DEFAULT_SERVE,
        kisscache=cache.cache_url)


def check_token(options: LavaOptions) -> str:
    """The token's user; UserError when LAVA refuses it ("" when the lab does not answer:
    its devices' suites then say so, the others run)."""
    from pytest_lkft.devices.lava.client import LabUnreachable, LavaClient, TokenRefused

    try:
        return LavaClient(options.url, options.token, retry_for=0).check_token()
    except TokenRefused:
        raise
    except LabUnreachable:
        return ""
    except LkftError as error:  # a LAVA too old for whoami: the first job will tell
        return f"(unchecked: {error})"


def _cancel_everything() -> None:
    for state in _STATES:
        state.session.cancel_all()


def _cancelling(previous: Any) -> Callable[[int, FrameType | None], None]:
    """A handler that cancels this process's jobs, then does what `previous` did (the
    labgrid side's release, or dying of the signal)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        _cancel_everything()
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    return handler


def _arm_signals() -> None:
    """Cancel on exit and on SIGTERM/SIGHUP (Ctrl-C unwinds through the device's wait)."""
    if len(_STATES) > 1:
        return
    atexit.register(_cancel_everything)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(signum)
        if previous is not signal.SIG_IGN:
            signal.signal(signum, _cancelling(previous))


def _skipped(item: pytest.Item) -> bool:
    """An item a `skip` mark (or a true `skipif`) keeps from running: it boots nothing."""
    if item.get_closest_marker("skip") is not None:
        return True
    return any(mark.args and all(arg is True for arg in mark.args)
               for mark in item.iter_markers("skipif"))


def item_steps(config: pytest.Config, item: pytest.Item, suites: set[str]) -> list[Step]:
    """The commands `item` runs on its device, as job steps (a parsed suite's once)."""
    from pytest_lkft.devices.lava.jobs import Step
    if "device" not in getattr(item, "fixturenames", ()) or _skipped(item):
        return []
    timeouts = config.stash[SETTINGS_KEY].timeouts
    suite = suite_name(item)
    parsed = item.get_closest_marker("lkft_parsed")
    if parsed is not None:
        if suite in suites or parsed.kwargs.get("command") is None:
            return []  # planned already, or the boot console (kunit): nothing to run
        suites.add(suite)
        timeout = timeouts.for_suite(parsed.kwargs.get("timeout"))
        steps = [Step(suite, "run", fill_command(str(parsed.kwargs["command"]), item), timeout)]
        setup = _setup_command(config, parsed.kwargs.get("setup"))
        return [Step(suite, "setup", setup, timeout), *steps] if setup else steps
    declared = item.get_closest_marker("lkft_commands")
    if declared is None:
        return []
    params: dict[str, Any] = dict(getattr(getattr(item, "callspec", None), "params", {}))
    return [Step(suite, case_name(item), str(command), timeouts.test)
            for command in declared.args[0](params)]


def _setup_command(config: pytest.Config, setup: Any) -> str | None:
    """A parsed suite's setup command; None when it has none or cannot make one (the
    suite's run says why)."""
    if not callable(setup):
        return None
    try:
        command = setup(config)
    except (Exception, pytest.fail.Exception, pytest.skip.Exception):  # noqa: BLE001
        return None
    return str(command) if command else None


def suite_runs(config: pytest.Config, items: list[pytest.Item],
               name: str) -> dict[RunKey, tuple[pytest.Module, list[Step]]]:
    """The suite runs of device `name` among `items`, in order: module and steps."""
    runs: dict[RunKey, tuple[pytest.Module, list[Step]]] = {}
    suites: dict[RunKey, set[str]] = {}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        module = item.getparent(pytest.Module)
        uses_device = "device" in getattr(item, "fixturenames", ())
        if module is None or params.get("lkft_device_name") != name or not uses_device:
            continue
        key = (str(module.path), name)
        found = item_steps(config, item, suites.setdefault(key, set()))
        boots = not _skipped(item) and item.get_closest_marker("lkft_crash_check") is None
        if key not in runs and (found or boots):  # a crash check alone boots nothing
            runs[key] = (module, [])
        if key in runs:
            runs[key][1].extend(found)
    return runs


def _plan(request: pytest.FixtureRequest, state: LavaState, name: str) -> None:
    """Make the LavaDevice of every suite run of `name` this process will run."""
    from pytest_lkft.devices.lava.session import Sources
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    spec = state.specs[name]
    artifacts = device_artifacts(config, *provisioned_as(spec))
    sources = Sources(settings.kernel, settings.rootfs, settings.dtb)
    # the kernel's release from its image, as local devices take it: a job's log has it
    # only when the boot arguments leave the banner shown (not with quiet)
    facts = {**artifacts.metadata, **kernel_facts(image_banner(artifacts.kernel))}
    for key, (module, steps) in suite_runs(config, request.session.items, name).items():
        suite = suite_name(module)
        try:
            inputs = state.session.job_inputs(spec, artifacts, sources, settings.timeouts,
                                              suite)
        except LkftError as error:
            pytest.fail(f"{name}: {error}", pytrace=False)
        run_dir = settings.results_dir / name / suite
        state.devices[key] = state.session.suite_device(
            spec, inputs, steps, run_dir,
            {"device": name, "arch": spec.arch, "suite": suite, **facts})
    state.planned.add(name)
    state.session.upcoming([d for d in state.devices.values() if d.job is None])


def provisioned_as(spec: LavaSpec) -> tuple[str, QemuSpec]:
    """The name a LAVA device's artifacts are provisioned under, and the QEMU spec they come
    from: its QEMU twin's (shared with local runs of the twin), or, for a board with a
    Debian flavour of its own, the board's."""
    twin = load_devices().get(spec.provision_as)
    if spec.boots is None or spec.boots == twin:
        return twin.name, twin
    return spec.name, spec.boots


def header_line(config: pytest.Config) -> str | None:
    """`lkft: lava=URL user=... jobs=N queue-timeout=S artifacts=...` with LAVA devices."""
    state = config.stash.get(LAVA_KEY, None)
    if state is None:
        return None
    options = state.session.options
    artifacts = options.artifacts_url or f"served on {options.serve}"
    user = f" user={state.user}" if state.user else ""
    return (f"lkft: lava={options.url}{user} jobs={options.jobs} "
            f"queue-timeout={options.queue_timeout:g} artifacts={artifacts}")


def make_lava_device(request: pytest.FixtureRequest, name: str,
                     stream: TextSink | None) -> LavaDevice:
    """The LAVA device of this suite run, its job submitted (and the next ones)."""
    state = request.config.stash[LAVA_KEY]
    if name not in state.planned:
        _plan(request, state, name)
    key = (str(request.node.path), name)
    device = state.devices.get(key)
    if device is None:  # a module the plan did not see (collected late): plan it alone
        state.planned.discard(name)
        _plan(request, state, name)
        device = state.devices[key]
    state.session.take(device)
    if device.job is not None:
        device.job.stream_to(stream)
    return device


class LavaKind:
    """The `lava:<device-type>` devices of a LAVA lab (--lkft-lava-url, LKFT_LAVA_TOKEN)."""

    name = "lava"

    def configure(self, config: pytest.Config) -> None:
        """Nothing until a `lava:` device is asked for (`check`)."""

    def names(self) -> list[str]:
        return []  # any lava:<device-type>: the lab knows its device types, not this table

    def claims(self, device: str) -> bool:
        return is_lava(device)

    def arch(self, device: str) -> str:
        return lava_spec(device).arch

    def check(self, config: pytest.Config, devices: Sequence[str]) -> None:
        """Check the names and the options, the token if the lab answers; arm the
        cancelling of this process's jobs."""
        from pytest_lkft.devices.lava.session import LavaSession, need_dtb

        specs = {name: lava_spec(name) for name in devices}
        settings = config.stash.get(SETTINGS_KEY, None)
        # a kernel built from --lkft-tree brings no device tree, as a given one does not
        built = bool(resolver(config).value("lkft_tree").value)
        for spec in specs.values():  # a board without its device tree: before any job
            if settings is not None:
                need_dtb(spec, settings.dtb,
                         default_kernel=settings.kernel is None and not built)
        options = options_from(config, devices[0])
        state = LavaState(LavaSession(options, config.stash[CACHE_KEY].root), specs)
        if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
            state.user = check_token(options)
        config.stash[LAVA_KEY] = state
        config.add_cleanup(state.session.close)
        _STATES.append(state)
        _arm_signals()

    def make(self, request: pytest.FixtureRequest, device: str, suite: str, run_dir: Path,
             stream: TextSink | None) -> Device:
        return make_lava_device(request, device, stream)
