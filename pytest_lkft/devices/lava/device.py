"""A LAVA device for one suite run: the suite's commands run as one job, answered after.

LAVA is batch: a job boots the device and runs what it was given. So the device learns
the suite's commands before it boots (`plan`, done by the `device` fixture from the
suite's items), they all go into one job, and each `run(command)` is then answered from
the finished job: the output between the command's markers in the job log, its exit
status from the job's LAVA test case (the log's marker when the case is missing). Every
suite that runs commands on a device works unchanged.

A command the plan did not have runs in a job of its own (a fresh boot: the shell state
of the suite's job is gone), so suites that decide their commands at run time still run.

Boot time, kernel version and crashes come from the job log. A job that did not reach a
shell is a boot error with LAVA's message and a link to the job; one that ended early
(Incomplete, Canceled, the lab gone) breaks the device at the first command without a
result, as a dead console does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_lkft.devices.console import CommandResult, shown
from pytest_lkft.devices.crash import Crash, CrashDetector, load_crash_patterns
from pytest_lkft.devices.lava.job import LavaJob
from pytest_lkft.devices.lava.joblog import Block
from pytest_lkft.devices.lava.jobs import Step
from pytest_lkft.devices.lava.specs import LavaSpec
from pytest_lkft.errors import DeviceBroken

# Makes and starts the job of a suite run: (steps, detector, log file name) -> job.
JobMaker = Callable[[list[Step], CrashDetector, str], LavaJob]


@dataclass(frozen=True)
class Answer:
    """What the job says about one planned command."""

    output: str
    exit_status: int | None


class LavaDevice:
    """One suite run on a LAVA device; see `pytest_lkft.devices.base.Device`.

    Lifecycle: made by the `device` fixture with its plan (the steps) and a job maker;
    `start()` submits the job (the session may do it early, to keep several jobs in
    flight); `boot()` waits for it to finish; `run()` answers from it; `close()` cancels
    it if it never finished.
    """

    def __init__(self, spec: LavaSpec, steps: list[Step], make_job: JobMaker,
                 run_dir: Path, metadata: dict[str, str]) -> None:
        self.spec, self.steps, self.make_job = spec, list(steps), make_job
        self.name, self.arch = spec.name, spec.arch
        self.run_dir = run_dir
        self.console_log = run_dir / "console.log"
        self.detector = CrashDetector(load_crash_patterns())
        self.boot_time: float | None = None
        self.boot_error: str | None = None
        self.broken: str | None = None
        self.metadata = dict(metadata)
        self.job: LavaJob | None = None
        self.extra_jobs = 0
        self._cursor = 0
        self._answers: list[Answer | None] = []
        self._finished = False
        self._failure = ""  # why the job failed after it reached a shell

    def start(self) -> LavaJob:
        """Submit the suite run's job (once)."""
        if self.job is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.console_log.unlink(missing_ok=True)
            self.job = self.make_job(self.steps, self.detector, "lava-log.yaml")
        return self.job

    @property
    def booted(self) -> bool:
        """True once the job was waited for (whatever its outcome)."""
        return self._finished

    def boot(self) -> None:
        """Wait for the job; its failure is kept in `boot_error`, not raised."""
        if self._finished:
            return
        job = self.start()
        try:
            job.wait()
        except BaseException:  # Ctrl-C: this run's jobs are its to cancel
            job.cancel()
            raise
        self._finished = True
        self._learn(job)

    def _learn(self, job: LavaJob) -> None:
        """Boot facts, answers and failures from the finished job."""
        self.metadata.update(self._job_metadata(job))
        self.boot_time = job.log.boot_time
        self._answers = answers(job, self.steps)
        failure = job_failure(job)
        if failure and job.log.shell_reached is None:
            fatal = self.detector.fatal
            crashed = f"; the kernel crashed while booting: {fatal.describe()}" if fatal else ""
            self.boot_error = self.broken = f"{failure}{crashed}\n--- console tail ---\n" \
                                            f"{job.log.tail_text()}"
        elif failure:
            self._failure = failure

    def _job_metadata(self, job: LavaJob) -> dict[str, str]:
        found = {"lava_job": job.url, "lava_health": job.health,
                 "kernel_version": job.log.kernel_version}
        device = job.record.get("actual_device")
        if device:
            found["lava_device"] = str(device)
        return {key: value for key, value in found.items() if value}

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """The planned command's output and exit status from the job."""
        if self.broken is not None:
            raise DeviceBroken(self.broken)
        self.boot()
        if self.broken is not None:
            raise DeviceBroken(self.broken)
        index = self._find(command)
        if index is None:
            return self._run_alone(command, timeout)
        answer = self._answers[index]
        if answer is None or answer.exit_status is None:
            self.broken = self._why_no_answer(command)
            raise DeviceBroken(self.broken)
        return CommandResult(command, answer.output, answer.exit_status, 0.0)

    def _find(self, command: str) -> int | None:
        """The next planned step running `command`, from the cursor on."""
        for index in range(self._cursor, len(self.steps)):
            if self.steps[index].command == command:
                self._cursor = index + 1
                return index
        return None

    def _why_no_answer(self, command: str) -> str:
        """Why a planned command has no result: a crash, the job's end, or a timeout."""
        assert self.job is not None
        fatal = self.detector.fatal
        if fatal is not None:
            reason = f"the device died while running {shown(command)}; {fatal.describe()}"
        else:
            failure = self._failure or \
                f"LAVA job {self.job.id} ended ({self.job.health}) before it ran; " \
                f"see {self.job.url}"
            reason = f"{shown(command)} did not finish: {failure}"
        return f"{reason}\n--- console tail ---\n{self.job.log.tail_text()}"

    def _run_alone(self, command: str, timeout: float | None) -> CommandResult:
        """An unplanned command: a job of its own (boot, the command)."""
        self.extra_jobs += 1
        suite = self.steps[0].suite if self.steps else "command"
        step = Step(suite, f"command-{self.extra_jobs}", command, timeout or 600.0)
        job = self.make_job([step], self.detector, f"lava-log-extra-{self.extra_jobs}.yaml")
        try:
            job.wait()
        except BaseException:
            job.cancel()
            raise
        found = answers(job, [step])[0]
        if found is None or found.exit_status is None:
            failure = job_failure(job) or f"LAVA job {job.id} gave no result; see {job.url}"
            raise DeviceBroken(f"{shown(command)} (not planned, run in a job of its own) did "
                               f"not finish: {failure}")
        return CommandResult(command, found.output, found.exit_status, 0.0)

    def crashes(self) -> list[Crash]:
        """Every crash or warning the job's console showed; then, when the job failed after
        it reached a shell, LAVA's account of it (the suite's crash check reports it)."""
        found = list(self.detector.crashes)
        if self._failure:
            found.append(Crash("LAVA job failure", self._failure, False,
                               self.job.log.lines if self.job else 0, "the job"))
        return found

    def set_context(self, context: str) -> None:
        """Contexts come from the job log (each command's case), not from the caller."""

    def close(self) -> None:
        """Cancel the job if it never finished (a suite that stopped early)."""
        if self.job is not None and not self.job.done.is_set():
            self.job.cancel()


def answers(job: LavaJob, steps: list[Step]) -> list[Answer | None]:
    """Each step's answer: output from the log's block, exit status from its LAVA test
    case (the block's marker without one); None for a step the job never started."""
    statuses = case_statuses(job.tests, steps)
    found: list[Answer | None] = []
    for index, status in enumerate(statuses):
        block: Block | None = job.log.blocks[index] if index < len(job.log.blocks) else None
        if block is not None and block.exit_status is None:
            found.append(Answer(block.output, None))  # it started and never ended
        elif block is None and status is None:
            found.append(None)
        else:
            found.append(Answer(block.output if block else "",
                                status if status is not None else block.exit_status
                                if block else None))
    return found


def case_statuses(tests: list[dict[str, Any]], steps: list[Step]) -> list[int | None]:
    """Exit statuses of the steps from the job's test cases (`measurement`, unit rc), in
    order per suite: a suite's n-th case with unit rc is its n-th step."""
    by_suite: dict[str, list[int]] = {}
    for test in tests:
        if test.get("unit") != "rc" or test.get("measurement") is None:
            continue
        suite = _definition(test)
        by_suite.setdefault(suite, []).append(int(float(test["measurement"])))
    seen: dict[str, int] = {}
    found: list[int | None] = []
    for step in steps:
        position = seen.get(step.suite, 0)
        seen[step.suite] = position + 1
        values = by_suite.get(step.suite, [])
        found.append(values[position] if position < len(values) else None)
    return found


def _definition(test: dict[str, Any]) -> str:
    """The suite (definition without LAVA's `N_`) of an API test case, from its metadata."""
    try:
        meta = yaml.safe_load(str(test.get("metadata") or "")) or {}
    except yaml.YAMLError:
        meta = {}
    definition = str(meta.get("definition", "")) if isinstance(meta, dict) else ""
    return re.sub(r"^\d+_", "", definition)


def job_failure(job: LavaJob) -> str:
    """One line on why the job did not complete ("" when it did), with its link."""
    if job.error:
        return job.error
    if job.health == "Complete":
        return ""
    why = job.log.job_error() or str(job.record.get("failure_comment") or "") or \
        "no error given"
    return f"LAVA job {job.id} {job.health}: {why}; see {job.url}"
