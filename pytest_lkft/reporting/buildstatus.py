"""A build's SQUAD status and SQUAD's regressions and fixes between two builds.

SQUAD 1.98 (`core/comparison.py`, `TestComparison(..., regressions_and_fixes_only=True)`)
pairs each target test with the baseline test of the same environment and full name, both
with a result (skips are left out) and different results: a target fail (not a known
issue) is a regression, a target pass is a fix (from fail or xfail). An xfail in the target
is neither. A build's baseline is the project's previous build that has test runs.

`status()` computes a build's figures once and keeps them in the store's `build_status`
table; recording a run in the build, or deleting a build, drops what depended on it.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import asdict, dataclass, field, fields

from pytest_lkft.reporting.store import Store, split_logs

RESULTS = "SELECT environment_id, suite_id, name, result FROM test WHERE build_id = ?"
Grouped = dict[str, dict[str, list[str]]]  # environment -> suite -> test names


@dataclass
class Changes:
    """Regressions and fixes, each environment -> suite -> test names (sorted)."""

    regressions: Grouped = field(default_factory=dict)
    fixes: Grouped = field(default_factory=dict)
    missing: Grouped = field(default_factory=dict)  # in the baseline, not in the target

    @staticmethod
    def flat(grouped: Grouped) -> dict[str, list[str]]:
        """environment -> full test names, as SQUAD's build status lists them."""
        return {env: sorted(f"{suite}/{name}" for suite, names in suites.items()
                            for name in names) for env, suites in grouped.items()}


@dataclass
class Status:
    """What SQUAD's `/api/builds/<id>/status/` says of a build, without URLs."""

    build_id: int
    baseline_id: int | None
    tests_pass: int
    tests_fail: int
    tests_skip: int
    tests_xfail: int
    test_runs: int
    metrics_summary: float
    has_metrics: bool
    last_updated: float | None
    created_at: float
    regressions: dict[str, list[str]]
    fixes: dict[str, list[str]]
    missing: dict[str, list[str]] = field(default_factory=dict)
    # for pages: [environment, suite, result word, count] and [environment, suite, test run]
    cells: list[tuple[str, str, str, int]] = field(default_factory=list)
    logs: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def tests_total(self) -> int:
        """Every test with a result word."""
        return self.tests_pass + self.tests_fail + self.tests_skip + self.tests_xfail


def compare_ids(db: sqlite3.Connection, baseline: int, target: int) -> Changes:
    """SQUAD's regressions and fixes from build `baseline` to build `target`."""
    before: dict[tuple[int, int, str], set[bool]] = {}
    for env, suite, name, word in db.execute(RESULTS, (baseline,)):
        was = before.setdefault((env, suite, name), set())
        if word != "skip":
            was.add(word == "pass")
    envs = {int(i): str(s) for i, s in db.execute("SELECT id, slug FROM environment")}
    suites = {int(i): str(s) for i, s in db.execute("SELECT id, slug FROM suite")}
    changes = Changes()
    seen: set[tuple[int, int, str]] = set()
    for env, suite, name, word in db.execute(RESULTS, (target,)):
        passed = word == "pass"
        results = before.get((env, suite, name))
        # a pair of different results, the target's a fail (not a known issue) or a pass
        seen.add((env, suite, name))
        if word in ("skip", "xfail") or (not passed) not in (results or ()):
            continue
        kind = changes.fixes if passed else changes.regressions
        names = kind.setdefault(envs[env], {}).setdefault(suites[suite], [])
        if not names or names[-1] != name:
            names.append(name)
    for env, suite, name in before.keys() - seen:
        changes.missing.setdefault(envs[env], {}).setdefault(suites[suite], []).append(name)
    for grouped in (changes.regressions, changes.fixes, changes.missing):
        for by_suite in grouped.values():
            for suite_name, names in by_suite.items():
                by_suite[suite_name] = sorted(set(names))
    return changes


def baseline_of(db: sqlite3.Connection, build_id: int) -> int | None:
    """The project's previous build with test runs (SQUAD's baseline)."""
    row = db.execute(
        "SELECT id FROM build WHERE project_id = (SELECT project_id FROM build WHERE id = ?)"
        " AND id < ? AND EXISTS (SELECT 1 FROM testrun WHERE testrun.build_id = build.id)"
        " ORDER BY id DESC LIMIT 1", (build_id, build_id)).fetchone()
    return int(row[0]) if row else None


def geometric_mean(values: list[float]) -> float:
    """SQUAD's metrics summary: the geometric mean of the positive values, else 0."""
    positive = [v for v in values if v > 0]
    return math.exp(sum(map(math.log, positive)) / len(positive)) if positive else 0.0


CELLS = """
SELECT environment.slug, suite.slug, test.result, count(*) FROM test
JOIN suite ON suite.id = test.suite_id JOIN environment ON environment.id = test.environment_id
WHERE test.build_id = ? GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


def suite_logs(db: sqlite3.Connection, build_id: int) -> list[tuple[str, str, int]]:
    """[environment, suite, test run] of each suite console log in the build's runs."""
    runs = db.execute("SELECT testrun.id, environment.slug, testrun.log FROM testrun JOIN"
                      " environment ON environment.id = testrun.environment_id"
                      " WHERE build_id = ? ORDER BY 2, 1", (build_id,))
    return [(str(env), suite, int(ident)) for ident, env, log in runs
            for suite, text in split_logs(str(log)).items() if suite and text]


def compute(db: sqlite3.Connection, build_id: int) -> Status:
    """A build's status from its tests, metrics and test runs."""
    counts = dict.fromkeys(("pass", "fail", "skip", "xfail", "error"), 0)
    for word, number in db.execute(
            "SELECT result, count(*) FROM test WHERE build_id = ? GROUP BY result", (build_id,)):
        counts[str(word)] = int(number)
    values = [float(v) for (v,) in db.execute(
        "SELECT value FROM metric WHERE build_id = ?", (build_id,))]
    runs, updated = db.execute("SELECT count(*), max(created_at) FROM testrun"
                               " WHERE build_id = ?", (build_id,)).fetchone()
    created = float(db.execute("SELECT created_at FROM build WHERE id = ?",
                               (build_id,)).fetchone()[0])
    baseline = baseline_of(db, build_id)
    changes = compare_ids(db, baseline, build_id) if baseline is not None and runs else Changes()
    return Status(build_id, baseline, counts["pass"], counts["fail"] + counts["error"],
                  counts["skip"], counts["xfail"], int(runs), geometric_mean(values),
                  bool(values), updated, created, Changes.flat(changes.regressions),
                  Changes.flat(changes.fixes), Changes.flat(changes.missing),
                  [(str(e), str(s), str(w), int(n))
                   for e, s, w, n in db.execute(CELLS, (build_id,))],
                  suite_logs(db, build_id))


def status(store: Store, build_id: int) -> Status:
    """A build's status, from the store's cache or computed and cached."""
    row = store.db.execute("SELECT data FROM build_status WHERE build_id = ?",
                           (build_id,)).fetchone()
    cached = json.loads(row[0]) if row is not None else {}
    if cached.keys() == {f.name for f in fields(Status)}:  # else written by another version
        return Status(**cached)
    found = compute(store.db, build_id)
    try:
        store.db.execute("INSERT OR REPLACE INTO build_status (build_id, baseline_id, data)"
                         " VALUES (?, ?, ?)", (build_id, found.baseline_id,
                                               json.dumps(asdict(found))))
    except sqlite3.OperationalError:
        pass  # a writer holds the file: answer without caching
    return found
