"""The embedded results store: one SQLite file with SQUAD's model.

Tables follow SQUAD's `core` models: group, project, build, environment, testrun,
suite, test, metric, knownissue. Only one process writes a run at a time (the pytest
controller, or `lkft serve`); each run goes in one transaction through `executemany`,
with WAL so readers never block the writer.

The file carries a schema version (`PRAGMA user_version`); opening an older file migrates
it in place, one step per version (`MIGRATIONS`), and a newer one is refused.

`compare()` answers what SQUAD's build comparison does (regressions pass->fail,
fixes fail->pass and xfail->pass, per test name and environment) and, beyond SQUAD, lists tests
missing from the target and tests flaky inside one build.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pytest_lkft.errors import UserError
from pytest_lkft.parsers.model import Case, Counts, Metric, Result

SCHEMA = """
CREATE TABLE IF NOT EXISTS "group" (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS project (
    id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL REFERENCES "group"(id),
    slug TEXT NOT NULL, UNIQUE (group_id, slug));
CREATE TABLE IF NOT EXISTS build (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES project(id),
    version TEXT NOT NULL, created_at REAL NOT NULL, UNIQUE (project_id, version));
CREATE TABLE IF NOT EXISTS environment (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES project(id),
    slug TEXT NOT NULL, UNIQUE (project_id, slug));
CREATE TABLE IF NOT EXISTS testrun (
    id INTEGER PRIMARY KEY, build_id INTEGER NOT NULL REFERENCES build(id),
    environment_id INTEGER NOT NULL REFERENCES environment(id),
    job_id TEXT UNIQUE, job_url TEXT NOT NULL DEFAULT '', metadata TEXT NOT NULL DEFAULT '{}',
    log TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, duration REAL NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS suite (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES project(id),
    slug TEXT NOT NULL, UNIQUE (project_id, slug));
CREATE TABLE IF NOT EXISTS test (
    id INTEGER PRIMARY KEY, testrun_id INTEGER NOT NULL, build_id INTEGER NOT NULL,
    environment_id INTEGER NOT NULL, suite_id INTEGER NOT NULL, name TEXT NOT NULL,
    result TEXT NOT NULL, log TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS test_build ON test (build_id);
CREATE TABLE IF NOT EXISTS metric (
    id INTEGER PRIMARY KEY, testrun_id INTEGER NOT NULL, build_id INTEGER NOT NULL,
    environment_id INTEGER NOT NULL, suite_id INTEGER NOT NULL, name TEXT NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS metric_build ON metric (build_id);
CREATE TABLE IF NOT EXISTS knownissue (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES project(id),
    test_name TEXT NOT NULL, environments TEXT NOT NULL DEFAULT '[]',
    reason TEXT NOT NULL DEFAULT '', url TEXT NOT NULL DEFAULT '',
    UNIQUE (project_id, test_name, environments));
"""

SCHEMA_VERSION = 2
# version -> statements taking a file from the version before to this one. Version 1 is
# SCHEMA above as it was before versions were recorded (user_version 0).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (  # SQUAD's project settings for its REST API and clients; cached build statuses
        "ALTER TABLE project ADD COLUMN is_public INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE project ADD COLUMN name TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE project ADD COLUMN description TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE project ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'",
        "CREATE TABLE IF NOT EXISTS build_status (build_id INTEGER PRIMARY KEY,"
        " baseline_id INTEGER, data TEXT NOT NULL)",
    ),
}
# A test run's log is its suites' console logs, each after a line naming the suite.
SUITE_LOG_MARK = "===== lkft console log of suite "
WORD = {r: r.value for r in Result}  # Enum.value is a slow property; this is a hot loop
FAILING = frozenset({Result.FAIL.value, Result.ERROR.value})


@dataclass
class RunRecord:
    """One test run: a device's results for one build, as SQUAD's submit receives them."""

    group: str
    project: str
    build: str
    environment: str
    cases: list[Case]
    metrics: dict[str, Metric] = field(default_factory=dict)  # "suite/name" -> value
    metadata: dict[str, str] = field(default_factory=dict)
    job_id: str | None = None
    job_url: str = ""
    log: str = ""
    duration: float = 0.0


@dataclass(frozen=True)
class BuildSummary:
    """One row of `lkft builds`: a build with SQUAD's columns."""

    version: str
    created_at: float
    counts: Counts
    environments: int
    duration: float


@dataclass(frozen=True)
class TestKey:
    """A test as compare sees it: environment and full `suite/test` name."""

    __test__ = False

    environment: str
    name: str


@dataclass(frozen=True)
class Change:
    """A test whose result changed between two builds."""

    environment: str
    name: str
    before: str
    after: str


@dataclass
class Comparison:
    """What changed from `base` to `target`."""

    base: str
    target: str
    regressions: list[Change] = field(default_factory=list)
    fixes: list[Change] = field(default_factory=list)
    missing: list[TestKey] = field(default_factory=list)
    new: list[TestKey] = field(default_factory=list)
    flaky: list[TestKey] = field(default_factory=list)


@dataclass(frozen=True)
class TestRow:
    """One stored test result with its log."""

    __test__ = False

    environment: str
    name: str
    result: str
    log: str


def join_logs(logs: Iterable[tuple[str, str]]) -> str:
    """One test run log from (suite, console log text) pairs, each under its mark line."""
    return "".join(f"{SUITE_LOG_MARK}{suite}\n{text}" for suite, text in logs)


def split_logs(log: str) -> dict[str, str]:
    """A test run log back into suite -> console log ('' for text before any mark)."""
    found: dict[str, str] = {}
    suite = ""
    for line in log.splitlines(keepends=True):
        if line.startswith(SUITE_LOG_MARK):
            suite = line[len(SUITE_LOG_MARK):].strip()
            found.setdefault(suite, "")
        elif line or suite:
            found[suite] = found.get(suite, "") + line
    return found


def split_project(full: str) -> tuple[str, str]:
    """Split `group/project`; raise UserError naming the value otherwise."""
    group, sep, project = full.partition("/")
    if not sep or not group or not project or "/" in project:
        raise UserError(f"invalid project {full!r}; expected GROUP/PROJECT, e.g. lkft/linux-6.1")
    return group, project


def tally(rows: Iterable[tuple[str, int]]) -> Counts:
    """Turn (result word, how many) rows into Counts."""
    tally_ = dict.fromkeys((r.value for r in Result), 0)
    for result, number in rows:
        tally_[result] = tally_.get(result, 0) + number
    return Counts(
        passed=tally_["pass"],
        failed=tally_["fail"],
        skipped=tally_["skip"],
        xfailed=tally_["xfail"],
        errors=tally_["error"],
    )


class Store:
    """An open store; use as a context manager or call `close()`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.migrate()

    def migrate(self) -> None:
        """Create the schema, or bring an older file up to SCHEMA_VERSION in one transaction."""
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            self.db.close()
            raise UserError(f"store {self.path} has schema version {version}, newer than this"
                            f" pytest-lkft's {SCHEMA_VERSION}; upgrade pytest-lkft to read it")
        with self.transaction():
            if self.db.execute("PRAGMA user_version").fetchone()[0] == version:  # not raced
                self._apply_migrations(max(version, 1))

    def _apply_migrations(self, version: int) -> None:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self.db.execute(statement)
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                self.db.execute(statement)
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one write transaction (BEGIN IMMEDIATE), rolled back on error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- ids --------------------------------------------------------------------------

    def _id(self, table: str, where: Mapping[str, object], extra: Mapping[str, object]) -> int:
        """Return the id of the row matching `where`, inserting it (with `extra`) if absent."""
        cond = " AND ".join(f"{k} = ?" for k in where)
        row = self.db.execute(f'SELECT id FROM "{table}" WHERE {cond}', tuple(where.values()))
        found = row.fetchone()
        if found:
            return int(found[0])
        cols = {**where, **extra}
        marks = ", ".join("?" for _ in cols)
        cur = self.db.execute(
            f'INSERT INTO "{table}" ({", ".join(cols)}) VALUES ({marks})', tuple(cols.values())
        )
        return int(cur.lastrowid or 0)

    def _project_id(self, group: str, project: str) -> int:
        group_id = self._id("group", {"slug": group}, {})
        return self._id("project", {"group_id": group_id, "slug": project}, {})

    def _suite_ids(self, project_id: int, names: Iterable[str]) -> dict[str, int]:
        return {n: self._id("suite", {"project_id": project_id, "slug": n}, {}) for n in names}

    def find_project(self, group: str, project: str) -> int | None:
        """Return a project's id, or None when the store has never seen it."""
        row = self.db.execute(
            'SELECT project.id FROM project JOIN "group" ON "group".id = project.group_id '
            'WHERE "group".slug = ? AND project.slug = ?',
            (group, project),
        ).fetchone()
        return int(row[0]) if row else None

    def projects(self) -> list[tuple[str, str]]:
        """List (group, project) pairs in the store."""
        rows = self.db.execute(
            'SELECT "group".slug, project.slug FROM project JOIN "group"'
            ' ON "group".id = project.group_id ORDER BY 1, 2'
        ).fetchall()
        return [(str(g), str(p)) for g, p in rows]

    def has_job(self, job_id: str) -> bool:
        """Tell whether a test run with this job_id is already stored."""
        row = self.db.execute("SELECT 1 FROM testrun WHERE job_id = ?", (job_id,)).fetchone()
        return row is not None

    # -- writing ----------------------------------------------------------------------

    def record(self, run: RunRecord, replace: bool = False) -> int:
        """Store one test run, its tests and metrics in one transaction; return its id.
        With `replace`, a stored run of the same job_id goes in the same transaction (a
        bisection step run again); without, that is sqlite3.IntegrityError."""
        with self.transaction():
            if replace and run.job_id:
                self._forget_job(run.job_id)
            project_id = self._project_id(run.group, run.project)
            now = {"created_at": time.time()}
            build_id = self._id("build", {"project_id": project_id, "version": run.build}, now)
            env_key = {"project_id": project_id, "slug": run.environment}
            env_id = self._id("environment", env_key, {})
            testrun_id = self._insert_testrun(run, build_id, env_id)
            self._insert_results(run, project_id, build_id, env_id, testrun_id)
            self.forget_statuses(build_id)
        return testrun_id

    def _forget_job(self, job_id: str) -> None:
        """Delete the test run of `job_id` with its tests and metrics (in a transaction)."""
        row = self.db.execute("SELECT id, build_id FROM testrun WHERE job_id = ?",
                              (job_id,)).fetchone()
        if row is None:
            return
        for table in ("test", "metric"):
            self.db.execute(f"DELETE FROM {table} WHERE testrun_id = ?", (row[0],))
        self.db.execute("DELETE FROM testrun WHERE id = ?", (row[0],))
        self.forget_statuses(row[1])

    def forget_statuses(self, build_id: int) -> None:
        """Drop cached statuses that depend on a build (its own, and those of later builds)."""
        self.db.execute("DELETE FROM build_status WHERE build_id = ? OR baseline_id = ?",
                        (build_id, build_id))

    def delete_build(self, group: str, project: str, version: str) -> int:
        """Delete a build with its test runs, tests and metrics; return how many tests went."""
        build_id = self._build_id(group, project, version)
        with self.transaction():
            gone = self.db.execute("DELETE FROM test WHERE build_id = ?", (build_id,)).rowcount
            for table in ("metric", "testrun"):
                self.db.execute(f"DELETE FROM {table} WHERE build_id = ?", (build_id,))
            self.db.execute("DELETE FROM build WHERE id = ?", (build_id,))
            self.forget_statuses(build_id)
        return int(gone)

    def _insert_testrun(self, run: RunRecord, build_id: int, env_id: int) -> int:
        cur = self.db.execute(
            "INSERT INTO testrun (build_id, environment_id, job_id, job_url, metadata, log, "
            "created_at, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                build_id,
                env_id,
                run.job_id,
                run.job_url,
                json.dumps(run.metadata, sort_keys=True),
                run.log,
                time.time(),
                run.duration,
            ),
        )
        return int(cur.lastrowid or 0)

    def _insert_results(
        self, run: RunRecord, project_id: int, build_id: int, env_id: int, testrun_id: int
    ) -> None:
        metric_suites = (key.rpartition("/")[0] for key in run.metrics)
        suites = self._suite_ids(project_id, {c.suite for c in run.cases}.union(metric_suites))
        head = (testrun_id, build_id, env_id)
        self.db.executemany(
            "INSERT INTO test (testrun_id, build_id, environment_id, suite_id, name, result, log)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (*head, suites[c.suite], c.name, WORD[c.result], "\n".join(c.log) if c.log else "")
                for c in run.cases
            ],
        )
        self.db.executemany(
            "INSERT INTO metric (testrun_id, build_id, environment_id, suite_id, name, value, unit)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (*head, suites[key.rpartition("/")[0]], key.rpartition("/")[2], m.value, m.unit)
                for key, m in run.metrics.items()
            ],
        )

    def add_known_issue(
        self, group: str, project: str, test_name: str, environments: list[str], reason: str
    ) -> None:
        """Record a known issue for a project (idempotent)."""
        with self.transaction():
            project_id = self._project_id(group, project)
            self.db.execute(
                "INSERT OR REPLACE INTO knownissue (project_id, test_name, environments, reason)"
                " VALUES (?, ?, ?, ?)",
                (project_id, test_name, json.dumps(sorted(environments)), reason),
            )

    # -- reading ----------------------------------------------------------------------

    def _build_id(self, group: str, project: str, version: str) -> int:
        row = self.db.execute(
            'SELECT build.id FROM build JOIN project ON project.id = build.project_id '
            'JOIN "group" ON "group".id = project.group_id '
            'WHERE "group".slug = ? AND project.slug = ? AND build.version = ?',
            (group, project, version),
        ).fetchone()
        if row is None:
            raise UserError(
                f"no build {version!r} in project {group}/{project}; see `lkft builds`"
            )
        return int(row[0])

    def builds(self, group: str, project: str) -> list[BuildSummary]:
        """List a project's builds, newest first, with SQUAD's counts."""
        project_id = self.find_project(group, project)
        if project_id is None:
            return []
        rows = self.db.execute(
            "SELECT id, version, created_at FROM build WHERE project_id = ? ORDER BY id DESC",
            (project_id,),
        ).fetchall()
        return [self._summary(int(i), v, float(t)) for i, v, t in rows]

    def _summary(self, build_id: int, version: str, created_at: float) -> BuildSummary:
        rows = self.db.execute(
            "SELECT result, count(*) FROM test WHERE build_id = ? GROUP BY result", (build_id,)
        ).fetchall()
        counts = tally(rows)
        envs, duration = self.db.execute(
            "SELECT count(DISTINCT environment_id), coalesce(sum(duration), 0) FROM testrun"
            " WHERE build_id = ?",
            (build_id,),
        ).fetchone()
        return BuildSummary(version, created_at, counts, int(envs), float(duration))

    def counts(self, group: str, project: str, version: str) -> Counts:
        """Return a build's counts (tests, pass, skip, fail, xfail, error)."""
        build_id = self._build_id(group, project, version)
        rows = self.db.execute(
            "SELECT result, count(*) FROM test WHERE build_id = ? GROUP BY result", (build_id,)
        ).fetchall()
        return tally(rows)

    def tests(self, group: str, project: str, version: str) -> list[TestRow]:
        """Return every test result of a build, ordered by environment and name."""
        build_id = self._build_id(group, project, version)
        rows = self.db.execute(
            "SELECT environment.slug, suite.slug || '/' || test.name, test.result, test.log"
            " FROM test JOIN environment ON environment.id = test.environment_id"
            " JOIN suite ON suite.id = test.suite_id WHERE test.build_id = ?"
            " ORDER BY environment.slug, 2, test.id",
            (build_id,),
        ).fetchall()
        return [TestRow(*row) for row in rows]

    def runs(self, group: str, project: str, version: str) -> list[RunRecord]:
        """Read a build's test runs back whole, in the order they were recorded."""
        build_id = self._build_id(group, project, version)
        rows = self.db.execute(
            "SELECT testrun.id, environment.slug, job_id, job_url, metadata, log, duration"
            " FROM testrun JOIN environment ON environment.id = testrun.environment_id"
            " WHERE build_id = ? ORDER BY testrun.id",
            (build_id,),
        ).fetchall()
        return [
            RunRecord(group, project, version, env, self._run_cases(int(run_id)),
                      self._run_metrics(int(run_id)), json.loads(metadata), job_id, job_url,
                      log, float(duration))
            for run_id, env, job_id, job_url, metadata, log, duration in rows
        ]

    def _run_cases(self, testrun_id: int) -> list[Case]:
        rows = self.db.execute(
            "SELECT suite.slug, test.name, test.result, test.log FROM test"
            " JOIN suite ON suite.id = test.suite_id WHERE testrun_id = ? ORDER BY test.id",
            (testrun_id,),
        ).fetchall()
        return [Case(suite, name, Result(result), log.splitlines() if log else [])
                for suite, name, result, log in rows]

    def _run_metrics(self, testrun_id: int) -> dict[str, Metric]:
        rows = self.db.execute(
            "SELECT suite.slug, metric.name, metric.value, metric.unit FROM metric"
            " JOIN suite ON suite.id = metric.suite_id WHERE testrun_id = ?",
            (testrun_id,),
        ).fetchall()
        return {f"{suite}/{name}": Metric(value, unit) for suite, name, value, unit in rows}

    def metrics(self, group: str, project: str, version: str) -> dict[TestKey, Metric]:
        """Return a build's metrics keyed by environment and `suite/name`."""
        build_id = self._build_id(group, project, version)
        rows = self.db.execute(
            "SELECT environment.slug, suite.slug || '/' || metric.name, metric.value, metric.unit"
            " FROM metric JOIN environment ON environment.id = metric.environment_id"
            " JOIN suite ON suite.id = metric.suite_id WHERE metric.build_id = ?",
            (build_id,),
        ).fetchall()
        return {TestKey(env, name): Metric(value, unit) for env, name, value, unit in rows}

    def previous_build(self, group: str, project: str, version: str) -> str | None:
        """Return the build recorded just before `version` in the same project, if any."""
        build_id = self._build_id(group, project, version)
        row = self.db.execute(
            "SELECT version FROM build WHERE project_id = (SELECT project_id FROM build"
            " WHERE id = ?) AND id < ? ORDER BY id DESC LIMIT 1",
            (build_id, build_id),
        ).fetchone()
        return str(row[0]) if row else None

    def results(self, group: str, project: str, version: str) -> dict[TestKey, set[str]]:
        """Map each test of a build to the set of results its runs gave."""
        found: dict[TestKey, set[str]] = {}
        for row in self.tests(group, project, version):
            found.setdefault(TestKey(row.environment, row.name), set()).add(row.result)
        return found

    def compare(self, group: str, project: str, base: str, target: str) -> Comparison:
        """Compare two builds of a project as SQUAD does, plus missing and flaky tests."""
        return compare_results(
            base, target, self.results(group, project, base), self.results(group, project, target)
        )


def outcome(results: set[str]) -> str:
    """Reduce a test's results within one build to one word; both pass and fail is flaky."""
    failing = bool(results & FAILING)
    if failing and Result.PASS.value in results:
        return "flaky"
    if failing:
        return "fail"
    for word in ("pass", "xfail", "skip"):
        if word in results:
            return word
    return "skip"


def compare_results(
    base: str, target: str, before: dict[TestKey, set[str]], after: dict[TestKey, set[str]]
) -> Comparison:
    """Classify each test's change between two result maps."""
    comparison = Comparison(base, target)
    for key in sorted(after, key=lambda k: (k.environment, k.name)):
        now = outcome(after[key])
        if now == "flaky":
            comparison.flaky.append(key)
        if key not in before:
            comparison.new.append(key)
            continue
        then = outcome(before[key])
        if then == "pass" and now == "fail":
            comparison.regressions.append(Change(key.environment, key.name, then, now))
        elif then in ("fail", "xfail") and now == "pass":  # SQUAD counts xfail->pass too
            comparison.fixes.append(Change(key.environment, key.name, then, now))
    comparison.missing = sorted(
        (k for k in before if k not in after), key=lambda k: (k.environment, k.name)
    )
    return comparison
