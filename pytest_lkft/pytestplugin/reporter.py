"""`LkftReporter`: the controller-only plugin object that records LKFT results.

Lifecycle (as junitxml's LogXML): registered in pytest_configure on the controller only;
`pytest_runtest_logreport` collects each LKFT item's result from its reports, which
arrive interleaved under xdist (the call report, or the setup report when setup failed
or skipped); a known issue turns a fail into xfail there, before the terminal and JUnit
see the report, and the build name is added to each case's JUnit properties;
`pytest_sessionfinish` hands one test run per device to each result sink (the store,
SQUAD when a URL is set, a plugin's: `pytest_lkft.reporting.sinks`);
`pytest_terminal_summary` prints the table per device and suite, then what each sink said
(the regressions and fixes against the previous build, among them).
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_lkft.errors import UserError
from pytest_lkft.parsers.model import Case, Counts, Metric, Result
from pytest_lkft.pytestplugin.options import resolver
from pytest_lkft.reporting import knownissues
from pytest_lkft.reporting.settings import Settings, resolve
from pytest_lkft.reporting.sinks import Delivery, ResultSink
from pytest_lkft.reporting.store import RunRecord, join_logs
from pytest_lkft.settings.options import TOKEN_ENV

SUITE, TEST, DEVICE, RESULT = "lkft.suite", "lkft.test", "lkft.device", "lkft.result"
METRIC, META, CONSOLE_LOG = "lkft.metric.", "lkft.meta.", "lkft.console_log"
BUILD = "lkft.build"  # added by the reporter to each LKFT case's JUnit properties
COLUMNS = ("tests", "pass", "fail", "skip", "xfail", "error")
SUMMARY_TITLE = "lkft results"


@dataclass
class DeviceRun:
    """What one device's items reported during the session."""

    cases: dict[str, Case] = field(default_factory=dict)  # nodeid -> case
    metrics: dict[str, Metric] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    console_logs: list[str] = field(default_factory=list)  # one per suite run, in order
    duration: float = 0.0


def properties(report: pytest.TestReport) -> dict[str, str]:
    """A report's user_properties as a dict of strings."""
    return {str(k): str(v) for k, v in report.user_properties}


def pytest_result(report: pytest.TestReport) -> Result:
    """Map a pytest report to an LKFT result; a failing setup is an error."""
    if hasattr(report, "wasxfail"):
        return Result.XFAIL if report.skipped else Result.PASS
    if report.passed:
        return Result.PASS
    if report.skipped:
        return Result.SKIP
    return Result.FAIL if report.when == "call" else Result.ERROR


def result_of(report: pytest.TestReport, props: dict[str, str]) -> Result:
    """The item's own `lkft.result` if valid, else the pytest outcome's."""
    try:
        return Result(props[RESULT])
    except (KeyError, ValueError):
        return pytest_result(report)


def parse_metric(text: str) -> Metric | None:
    """Parse `"<value> <unit>"`; None if the value is not a number."""
    value, _, unit = text.strip().partition(" ")
    try:
        return Metric(float(value), unit.strip())
    except ValueError:
        return None


def failure_log(report: pytest.TestReport) -> list[str]:
    """The failure text and captured sections (kernel log, stdout) of a report."""
    parts = [f"--- {title} ---\n{text}" for title, text in report.sections if text]
    if report.longreprtext:
        parts.append(report.longreprtext)
    return "\n".join(parts).splitlines()


def mark_xfail(report: pytest.TestReport, reason: str) -> None:
    """Turn a failed report into an xfail one, as pytest's own xfail does."""
    report.outcome = "skipped"
    report.wasxfail = reason


def git_describe(root: Path) -> str:
    """`git describe --always --dirty` in the rootdir, or '' outside git."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=root, capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


class LkftReporter:
    """Collects LKFT results on the controller and records them once at session end."""

    def __init__(self, config: pytest.Config, settings: Settings,
                 sinks: Sequence[ResultSink]) -> None:
        self.config = config
        self.settings = settings
        self.sinks = list(sinks)
        self.devices: dict[str, DeviceRun] = {}
        self.xfails: dict[str, str] = {}  # nodeid -> known issue reason
        self.build = ""
        self.messages: list[str] = []

    def pytest_report_header(self) -> str:
        """Say where results go: `lkft: store=... project=... squad=...`."""
        squad = self.settings.squad_url or "off"
        if self.settings.squad_url and not os.environ.get(TOKEN_ENV):
            squad += f" ({TOKEN_ENV} is empty: runs will be spooled, not submitted)"
        issues = len(self.settings.known_issues)
        return (f"lkft: store={self.settings.store} project={self.settings.group}/"
                f"{self.settings.project} squad={squad} known-issues={issues}")

    def environment_of(self, device: str) -> str:
        """The SQUAD environment for a device: --lkft-squad-environment or the device."""
        return self.settings.environment or device

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record an LKFT item's result; apply known issues before others see the report."""
        props = properties(report)
        if SUITE not in props:
            return
        if report.when == "teardown":
            self.finish_item(report, props)
            return
        if report.when == "setup" and report.passed:  # the boot: counted in the run's time
            run = self.devices.setdefault(props.get(DEVICE, "unknown"), DeviceRun())
            run.duration += report.duration
            return
        self.record_case(report, props)

    def record_case(self, report: pytest.TestReport, props: dict[str, str]) -> None:
        """Store the case of a call report (or of a setup that failed or skipped)."""
        run = self.devices.setdefault(props.get(DEVICE, "unknown"), DeviceRun())
        suite, name = props[SUITE], props.get(TEST, report.nodeid)
        result = result_of(report, props)
        env = self.environment_of(props.get(DEVICE, "unknown"))
        result, reason = knownissues.apply(
            self.settings.known_issues, f"{suite}/{name}", env, result
        )
        if reason:
            self.xfails[report.nodeid] = reason
            mark_xfail(report, reason)
        log = failure_log(report) if result is not Result.PASS else []
        run.cases[report.nodeid] = Case(suite, name, result, log=log, reason=reason)
        run.duration += report.duration
        self.collect_run_facts(run, suite, props)

    def collect_run_facts(self, run: DeviceRun, suite: str, props: dict[str, str]) -> None:
        """Keep metrics, metadata and the console log path the item carries."""
        for key, value in props.items():
            if key.startswith(METRIC):
                metric = parse_metric(value)
                if metric is not None:
                    run.metrics[f"{suite}/{key[len(METRIC):]}"] = metric
            elif key.startswith(META):
                run.metadata[key[len(META):]] = value
        if CONSOLE_LOG in props and props[CONSOLE_LOG] not in run.console_logs:
            run.console_logs.append(props[CONSOLE_LOG])

    def finish_item(self, report: pytest.TestReport, props: dict[str, str]) -> None:
        """Carry the build and a known-issue xfail into JUnit; a failing teardown is an error."""
        self.build = self.build or self.default_build()  # fixed by the first item that ends
        report.user_properties.append((BUILD, self.build))
        if report.nodeid in self.xfails:
            report.user_properties.append((RESULT, Result.XFAIL.value))
        if report.failed:
            run = self.devices.get(props.get(DEVICE, "unknown"))
            case = run.cases.get(report.nodeid) if run else None
            if case is not None and case.ok:
                case.result = Result.ERROR
                case.log += failure_log(report)

    # -- session end ------------------------------------------------------------------

    def default_build(self) -> str:
        """The build name: option, the kernel's (distro) version, `git describe`, else the
        date. Devices are looked at by name, so a matrix gets one name whatever finished
        first; a kernel path is never a name (a failed boot still has the image's banner)."""
        if self.settings.build:
            return self.settings.build
        for _, run in sorted(self.devices.items()):
            name = build_name(run.metadata)
            if name:
                return name
        described = git_describe(self.config.rootpath)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        return described or f"local-{stamp}"

    def records(self) -> list[RunRecord]:
        """One RunRecord per device, with a fresh unique job_id."""
        return [
            RunRecord(
                group=self.settings.group,
                project=self.settings.project,
                build=self.build,
                environment=self.environment_of(device),
                cases=list(run.cases.values()),
                metrics=run.metrics,
                metadata={**run.metadata, "device": device},
                job_id=f"lkft-{uuid.uuid4().hex}",
                job_url=self.settings.job_url,
                log=join_logs((Path(path).parent.name, read_log(path))
                              for path in run.console_logs),
                duration=run.duration,
            )
            for device, run in sorted(self.devices.items())
        ]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Hand each device's test run to every sink (the store, SQUAD, ...)."""
        if not self.devices:
            return
        self.build = self.build or self.default_build()
        logs = [run.console_logs for _, run in sorted(self.devices.items())]
        runs = [Delivery(record, console_logs)
                for record, console_logs in zip(self.records(), logs, strict=True)]
        for sink in self.sinks:
            self.messages += sink.deliver(runs)

    # -- terminal ---------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Print the per device and suite table, regressions, fixes and SQUAD outcomes."""
        if not self.devices:
            return
        tr = terminalreporter
        tr.write_sep("=", SUMMARY_TITLE)
        for line in summary_table(self.devices):
            tr.write_line(line)
        for message in self.messages:
            tr.write_line(message)


DISTRO_VERSION = re.compile(r"#\S*\s.*?\b(?:Debian|Ubuntu)\s+(\d\S*)")


def build_name(metadata: dict[str, str]) -> str:
    """A run's build: the distribution's kernel version when the banner has one (the same
    for every architecture: `Debian 6.1.192-3`), else the whole release (`uname -r`)."""
    found = DISTRO_VERSION.search(metadata.get("kernel_banner", ""))
    return found.group(1) if found else metadata.get("kernel_version", "")


def read_log(path: str) -> str:
    """The console log's text, or '' if there is none."""
    if not path:
        return ""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def row(label: str, counts: Counts) -> str:
    """One table line: a label and the six counts."""
    values = (counts.total, counts.passed, counts.failed, counts.skipped, counts.xfailed,
              counts.errors)
    return f"{label:<40} " + " ".join(f"{v:>6}" for v in values)


def summary_table(devices: dict[str, DeviceRun]) -> list[str]:
    """Lines of the table: one per device and suite, then a total."""
    lines = [f"{'device / suite':<40} " + " ".join(f"{c:>6}" for c in COLUMNS)]
    everything: list[Case] = []
    for device, run in sorted(devices.items()):
        suites: dict[str, list[Case]] = {}
        for case in run.cases.values():
            suites.setdefault(case.suite, []).append(case)
        for suite, cases in sorted(suites.items()):
            lines.append(row(f"{device} / {suite}", Counts.of(cases)))
        everything += run.cases.values()
    lines.append(row("total", Counts.of(everything)))
    return lines


REPORTER_NAME = "lkft-reporter"


def configure(config: pytest.Config) -> None:
    """Resolve the settings and register the reporter, on the xdist controller only."""
    if hasattr(config, "workerinput") or config.pluginmanager.has_plugin(REPORTER_NAME):
        return
    try:
        settings = resolve(resolver(config))
    except UserError as error:
        raise pytest.UsageError(str(error)) from error
    sinks = [sink for found in config.hook.pytest_lkft_result_sinks(config=config,
                                                                    settings=settings)
             for sink in found]
    config.pluginmanager.register(LkftReporter(config, settings, sinks), REPORTER_NAME)
