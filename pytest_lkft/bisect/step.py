"""One step of a bisection: the plugin run as a user runs it, once per `--repeat`.

Each run is `python -m pytest -p lkft` with plugin autoloading off (only the plugin and
pytest's own: other installed plugins would cost start-up time and could change the run)
in its own directory (a `pytest.ini` there, so the plugin's packaged suites are
collected and no project's settings apply), with
`--lkft-tree` on the bisection's worktree, `--lkft-build-dir` on its shared object
directory, `--lkft-tests` on the build and the selection (only the selected cases of
the suites are items), and a store of its own,
from which the run's results are read back. The step is recorded in the bisection's
store only once every run is over, in one transaction, so an interrupted step leaves no
record. Ctrl-C is handed to pytest (its own session) once, and we wait for it to tear
its devices down: no QEMU outlives it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_lkft.bisect.git import Commit
from pytest_lkft.bisect.selection import Selection
from pytest_lkft.bisect.state import GROUP
from pytest_lkft.bisect.verdict import CaseOrder, Verdict, build_failure, case_order, combine, judge
from pytest_lkft.errors import InfraError, UserError
from pytest_lkft.parsers import ktap
from pytest_lkft.reporting.store import RunRecord, Store
from pytest_lkft.settings.options import OPTIONS

# a run's settings come from its command line alone, not from the user's environment
CONTROLLED_ENV = frozenset({o.env for o in OPTIONS if o.env} | {"PYTEST_ADDOPTS"})
STEP_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # what reproducer.sh exports too
NO_BYTECODE = "PYTHONDONTWRITEBYTECODE"
INTERRUPTED, USAGE_ERROR = 2, 4
TEARDOWN_WAIT = 120.0  # seconds pytest gets to stop its devices after Ctrl-C


@dataclass(frozen=True)
class Runner:
    """Runs the steps of one bisection: the same pytest command at each revision."""

    name: str
    tree: Path  # what is built: the bisection's worktree (bisect-step: the user's tree)
    build_dir: Path
    cache: Path
    device: str
    selection: Selection
    pytest_args: tuple[str, ...] = ()
    repeat: int = 1
    flaky: str | None = None

    def command(self, run_dir: Path, version: str, whole: bool = False) -> list[str]:
        """The pytest command of one run (what reproducer.sh runs too); `whole` runs every
        case of the selected suites, not only the selected ones."""
        return [sys.executable, "-m", "pytest", "-p", "lkft", "-p", "no:cacheprovider",
                "-p", "no:randomly",
                f"--lkft-device={self.device}", f"--lkft-tree={self.tree}",
                f"--lkft-build-dir={self.build_dir}", f"--lkft-cache-dir={self.cache}",
                f"--lkft-tests={','.join(self.selection.tests(whole))}",
                f"--lkft-store={run_dir / 'store.sqlite3'}", f"--lkft-squad-group={GROUP}",
                f"--lkft-squad-project={self.name}", f"--lkft-squad-build={version}",
                f"--lkft-results-dir={run_dir / 'results'}", *self.pytest_args]

    def run(self, sha: str, step_dir: Path, whole: bool = False) -> list[RunRecord]:
        """Every run of the step at `sha` (checked out already); fewer when the kernel
        does not build, as a rebuild would fail the same way."""
        runs: list[RunRecord] = []
        for index in range(1, self.repeat + 1):
            runs.append(self.run_once(step_dir / f"run-{index}", sha[:12], whole))
            if build_failure(runs[-1].cases) is not None:
                break
        return runs

    def run_once(self, run_dir: Path, version: str, whole: bool = False) -> RunRecord:
        """One pytest run; its results as the plugin recorded them."""
        shutil.rmtree(run_dir, ignore_errors=True)  # what an interrupted attempt left
        run_dir.mkdir(parents=True)
        (run_dir / "pytest.ini").write_text("[pytest]\n")
        started = time.time()
        status = run_to_end(self.command(run_dir, version, whole), run_dir,
                            environment(self.cache))
        if status == INTERRUPTED:
            raise KeyboardInterrupt
        if status == USAGE_ERROR:
            raise UserError(usage_error(run_dir / "pytest.log"))
        record = read_record(run_dir, self.name, version)
        record.metadata.update(build_facts(self.build_dir, started))
        record.metadata["wall_time"] = f"{time.time() - started:.1f}"
        return record

    def verdict(self, runs: list[RunRecord], order: CaseOrder) -> Verdict:
        """The step's verdict from its runs (`pytest_lkft.bisect.verdict`); paths in the
        tree are said from its top, as in a patch (`lib/list_sort.c:19:43: error: ...`)."""
        verdict = combine([judge(run.cases, self.selection, order) for run in runs],
                          self.flaky)
        return dataclasses.replace(verdict, reason=verdict.reason.replace(f"{self.tree}/", ""))


def environment(cache: Path) -> dict[str, str]:
    """The user's environment without the variables a run's command line decides, plugin
    autoloading off. Where byte code is not written (PYTHONDONTWRITEBYTECODE), the steps
    keep theirs under the cache instead (PYTHONPYCACHEPREFIX): each step's pytest would
    otherwise compile the plugin again."""
    env = {k: v for k, v in os.environ.items() if k not in CONTROLLED_ENV}
    if env.pop(NO_BYTECODE, "") and not env.get("PYTHONPYCACHEPREFIX"):
        env["PYTHONPYCACHEPREFIX"] = str(cache / "bisect" / ".pycache")
    return {**env, **STEP_ENV}


def run_to_end(argv: list[str], run_dir: Path, env: dict[str, str]) -> int:
    """Run pytest in its own session, output to pytest.log; on Ctrl-C, pass one SIGINT to
    it and wait until it has torn its devices down (SIGTERM, then SIGKILL, if it hangs)."""
    with open(run_dir / "pytest.log", "w") as log:
        log.write(" ".join(argv) + "\n")
        log.flush()
        process = subprocess.Popen(argv, cwd=run_dir, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            return process.wait()
        except KeyboardInterrupt:
            stop(process)
            raise


def stop(process: subprocess.Popen[bytes]) -> None:
    """Interrupt pytest as Ctrl-C would, then wait for it (escalating if it hangs)."""
    for sig, wait in ((signal.SIGINT, TEARDOWN_WAIT), (signal.SIGTERM, 10.0),
                      (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def usage_error(log: Path) -> str:
    """pytest's one-line usage error (`ERROR: ...`) from a run's log."""
    lines = log.read_text(errors="replace").splitlines()
    found = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
    return found[0] if found else f"pytest refused the step's options; see {log}"


def read_record(run_dir: Path, name: str, version: str) -> RunRecord:
    """The run's results from the store it wrote (one test run: one device)."""
    path = run_dir / "store.sqlite3"
    try:
        with Store(path) as store:
            runs = store.runs(GROUP, name, version)
    except UserError:
        runs = []
    if not runs:
        raise InfraError(f"the step's pytest run recorded no results; see "
                         f"{run_dir / 'pytest.log'}")
    return runs[0]


def build_facts(build_dir: Path, started: float) -> dict[str, str]:
    """The build's duration, or "cached" when this run reused an earlier build."""
    found = sorted(build_dir.glob("*/metadata.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        return {}
    if found[-1].stat().st_mtime < started:
        return {"build_time": "cached"}
    metadata = json.loads(found[-1].read_text())
    return {"build_time": f"{metadata['results']['duration']['build']:.1f}",
            "build_status": str(metadata["results"]["status"])}


def step_record(name: str, index: int, commit: Commit, runs: list[RunRecord],
                verdict: Verdict) -> RunRecord:
    """One store record for the step: every run's cases (so compare sees flaky ones), the
    revision, verdict and reason in the metadata, the console logs as its log."""
    first = runs[0]
    metadata = {**first.metadata, "revision": commit.sha, "subject": commit.subject,
                "author": commit.author, "verdict": verdict.word, "reason": verdict.reason,
                "step": str(index), "runs": str(len(runs)), "step_time":
                f"{sum(float(run.metadata.get('wall_time', 0)) for run in runs):.1f}",
                "cases": json.dumps(verdict.cases, sort_keys=True)}
    return RunRecord(GROUP, name, commit.short, first.environment,
                     [case for run in runs for case in run.cases],
                     {k: v for run in runs for k, v in run.metrics.items()}, metadata,
                     f"bisect-{name}-{commit.sha}", log="\n".join(run.log for run in runs),
                     duration=sum(run.duration for run in runs))


def recorded_steps(store: Store, name: str) -> dict[str, RunRecord]:
    """The steps a bisection recorded, by revision."""
    steps: dict[str, RunRecord] = {}
    for build in reversed(store.builds(GROUP, name)):
        for run in store.runs(GROUP, name, build.version):
            if "revision" in run.metadata and "verdict" in run.metadata:
                steps[run.metadata["revision"]] = run
    return steps


def recorded_verdict(record: RunRecord) -> Verdict:
    """A recorded step's verdict."""
    cases = json.loads(record.metadata.get("cases", "{}"))
    return Verdict(record.metadata["verdict"], record.metadata.get("reason", ""), cases)


def order_of(logs: Iterable[str], selection: Selection) -> CaseOrder:
    """The order the selected suites' KTAP output reported cases in (see verdict)."""
    order: CaseOrder = {}
    suites = sorted({name.partition("/")[0] for name in selection.exact_cases()})
    for log in logs:
        for suite in suites:
            for block, children in case_order(ktap.parse(log.splitlines(), suite)).items():
                if len(children) > len(order.get(block, [])):  # a crash cuts a block short
                    order[block] = children
    return order
