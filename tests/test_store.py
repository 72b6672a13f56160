"""The embedded store: recording, counts, SQUAD's compare plus missing and flaky, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_lkft.cli import main
from pytest_lkft.errors import UserError
from pytest_lkft.parsers.model import Case, Counts, Metric, Result
from pytest_lkft.reporting import knownissues
from pytest_lkft.reporting.store import Change, RunRecord, Store, TestKey, compare_results


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep HOME and the caches inside the test's tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LKFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LKFT_STORE", raising=False)


def run_of(build: str, env: str, results: dict[str, Result]) -> RunRecord:
    """A test run of `suite/test` -> result."""
    cases = [Case(n.split("/")[0], n.split("/")[1], r, log=[f"log of {n}"])
             for n, r in results.items()]
    return RunRecord("lkft", "linux", build, env, cases, metrics={"boot/time": Metric(2.5, "s")})


BASE = {"ltp/a": Result.PASS, "ltp/b": Result.FAIL, "ltp/c": Result.PASS,
        "ltp/d": Result.SKIP, "ltp/gone": Result.PASS, "kunit/x": Result.PASS}
TARGET = {"ltp/a": Result.FAIL, "ltp/b": Result.PASS, "ltp/c": Result.PASS,
          "ltp/d": Result.FAIL, "ltp/new": Result.FAIL, "kunit/x": Result.XFAIL}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A store holding builds v1 and v2 on qemu-arm64, v2 with a flaky retry."""
    s = Store(tmp_path / "store.sqlite3")
    s.record(run_of("v1", "qemu-arm64", BASE))
    s.record(run_of("v2", "qemu-arm64", TARGET))
    s.record(run_of("v2", "qemu-arm64", {"ltp/c": Result.FAIL}))
    return s


def test_counts_per_build(store: Store) -> None:
    assert store.counts("lkft", "linux", "v1") == Counts(passed=4, failed=1, skipped=1)
    assert store.counts("lkft", "linux", "v2") == Counts(passed=2, failed=4, xfailed=1)


def test_compare_as_squad_plus_missing_and_flaky(store: Store) -> None:
    c = store.compare("lkft", "linux", "v1", "v2")
    assert c.regressions == [Change("qemu-arm64", "ltp/a", "pass", "fail")]
    assert c.fixes == [Change("qemu-arm64", "ltp/b", "fail", "pass")]
    assert c.missing == [TestKey("qemu-arm64", "ltp/gone")]
    assert c.new == [TestKey("qemu-arm64", "ltp/new")]
    assert c.flaky == [TestKey("qemu-arm64", "ltp/c")]


def test_other_environment_is_not_compared(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as s:
        s.record(run_of("v1", "qemu-arm64", {"ltp/a": Result.PASS}))
        s.record(run_of("v2", "qemu-x86_64", {"ltp/a": Result.FAIL}))
        c = s.compare("lkft", "linux", "v1", "v2")
    assert c.regressions == []
    assert c.missing == [TestKey("qemu-arm64", "ltp/a")]


def test_builds_previous_metrics_and_logs(store: Store) -> None:
    assert [b.version for b in store.builds("lkft", "linux")] == ["v2", "v1"]
    assert store.previous_build("lkft", "linux", "v2") == "v1"
    assert store.previous_build("lkft", "linux", "v1") is None
    assert store.metrics("lkft", "linux", "v1") == {
        TestKey("qemu-arm64", "boot/time"): Metric(2.5, "s")}
    logs = {t.name: t.log for t in store.tests("lkft", "linux", "v1")}
    assert logs["ltp/b"] == "log of ltp/b"


def test_unknown_build_says_what_to_do(store: Store) -> None:
    with pytest.raises(UserError, match="no build 'v9' in project lkft/linux; see `lkft builds`"):
        store.counts("lkft", "linux", "v9")


def test_bulk_record_is_one_transaction(tmp_path: Path) -> None:
    cases = {f"ltp/t{i}": Result.PASS for i in range(20000)}
    with Store(tmp_path / "s.db") as s:
        s.record(run_of("v1", "qemu-arm64", cases))
        assert s.counts("lkft", "linux", "v1").passed == 20000
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_known_issues_file(tmp_path: Path) -> None:
    path = tmp_path / "known.yaml"
    path.write_text("known_issues:\n  - test: 'ltp/abort*'\n    environments: [qemu-arm64]\n"
                    "    reason: hangs under TCG\n")
    issues = knownissues.load(path)
    assert knownissues.apply(issues, "ltp/abort01", "qemu-arm64", Result.FAIL) == (
        Result.XFAIL, "hangs under TCG")
    assert knownissues.apply(issues, "ltp/abort01", "qemu-x86_64", Result.FAIL)[0] is Result.FAIL
    assert knownissues.apply(issues, "ltp/abort01", "qemu-arm64", Result.PASS)[0] is Result.PASS


def test_known_issues_file_errors_name_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "known.yaml"
    path.write_text("- reason: no pattern\n")
    with pytest.raises(UserError, match="known.yaml: entry 1: expected a mapping with a 'test'"):
        knownissues.load(path)


def test_cli_builds_show_compare(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(store.path)
    assert main(["builds", "--store", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == "v2" and lines[1].split()[3:8] == ["7", "2", "0", "4", "1"]
    assert main(["show", "--store", path, "--project", "lkft/linux", "v1"]) == 0
    assert "FAIL  qemu-arm64: ltp/b" in capsys.readouterr().out
    assert main(["compare", "--store", path, "v1", "v2"]) == 1
    out = capsys.readouterr().out
    assert "v1 -> v2: 1 regressions, 1 fixes, 1 flaky, 1 missing, 1 new" in out
    assert "  qemu-arm64: ltp/a (pass -> fail)" in out


def test_cli_without_store_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["builds"]) == 2
    err = capsys.readouterr().err
    assert f"no store at {tmp_path}/cache/store.sqlite3; run pytest" in err


WORDS = st.sampled_from(["pass", "fail", "skip", "error"])
RESULT_MAPS = st.dictionaries(
    st.builds(TestKey, st.sampled_from(["qemu-arm64", "qemu-x86_64"]),
              st.sampled_from([f"ltp/t{i}" for i in range(6)])),
    st.sets(WORDS, min_size=1, max_size=2), max_size=12)


@given(RESULT_MAPS, RESULT_MAPS)
def test_compare_swapped_turns_regressions_into_fixes(
    before: dict[TestKey, set[str]], after: dict[TestKey, set[str]]
) -> None:
    forward = compare_results("a", "b", before, after)
    backward = compare_results("b", "a", after, before)
    swap = [Change(c.environment, c.name, c.after, c.before) for c in backward.fixes]
    assert forward.regressions == swap
    assert set(forward.missing) == set(backward.new)
    assert not {(c.environment, c.name) for c in forward.regressions} & {
        (k.environment, k.name) for k in forward.flaky}


def test_cli_delete_build(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(store.path)
    assert main(["builds", "--store", path, "--delete", "v2"]) == 0
    assert capsys.readouterr().out == "deleted build v2 of lkft/linux (7 tests)\n"
    assert [b.version for b in store.builds("lkft", "linux")] == ["v1"]
    counts = store.db.execute("SELECT (SELECT count(*) FROM test), (SELECT count(*) FROM"
                              " testrun), (SELECT count(*) FROM metric)").fetchone()
    assert counts == (6, 1, 1)
    assert main(["builds", "--store", path, "--delete", "v2"]) != 0
    assert "no build 'v2' in project lkft/linux; see `lkft builds`" in capsys.readouterr().err


V1_FILE = """
CREATE TABLE "group" (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE);
CREATE TABLE project (id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL, slug TEXT NOT NULL);
CREATE TABLE build (id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, version TEXT NOT NULL,
    created_at REAL NOT NULL);
INSERT INTO "group" VALUES (1, 'lkft');
INSERT INTO project VALUES (1, 1, 'old');
INSERT INTO build VALUES (1, 1, 'v0', 0);
"""


def test_older_file_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # a store written before schema versions (version 1)
        db.executescript(V1_FILE)
    with Store(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone() == (2,)
        assert store.db.execute("SELECT slug, is_public, settings FROM project").fetchall() == [
            ("old", 1, "{}")]
        assert [b.version for b in store.builds("lkft", "old")] == ["v0"]
        store.record(run_of("v1", "qemu-arm64", BASE))
    with Store(path) as store:  # opening again migrates nothing
        assert store.counts("lkft", "linux", "v1").total == 6


def test_newer_file_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "new.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(UserError, match=r"has schema version 99, newer than this pytest-lkft's"
                                        r" 2; upgrade pytest-lkft to read it"):
        Store(path)


def test_build_status_is_cached_and_dropped_when_its_builds_change(store: Store) -> None:
    from pytest_lkft.reporting import buildstatus

    v2 = store.db.execute("SELECT id FROM build WHERE version = 'v2'").fetchone()[0]
    found = buildstatus.status(store, v2)
    # SQUAD's rules: ltp/a pass -> fail; ltp/b fail -> pass; kunit/x pass -> xfail is neither;
    # ltp/c passed and failed in v2 (two runs): a regression as well
    assert found.regressions == {"qemu-arm64": ["ltp/a", "ltp/c"]}
    assert found.fixes == {"qemu-arm64": ["ltp/b"]}
    assert found.missing == {"qemu-arm64": ["ltp/gone"]}
    assert store.db.execute("SELECT count(*) FROM build_status").fetchone() == (1,)
    store.record(run_of("v2", "qemu-x86_64", {"ltp/a": Result.PASS}))
    assert store.db.execute("SELECT count(*) FROM build_status").fetchone() == (0,)
    assert buildstatus.status(store, v2).test_runs == 3
    store.delete_build("lkft", "linux", "v1")
    again = buildstatus.status(store, v2)
    assert (again.baseline_id, again.regressions, again.missing) == (None, {}, {})
