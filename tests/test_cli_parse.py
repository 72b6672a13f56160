"""`lkft parse` run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "synthetic-kunit-crash.ktap.log"


def lkft_parse(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest_lkft.cli", "parse", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_prints_sorted_json_results() -> None:
    done = lkft_parse(str(SAMPLE))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "kunit/alpha.alpha_first": "pass",
        "kunit/alpha.alpha_second": "fail",
        "kunit/beta.beta_first": "skip",
        "kunit/beta.<missing #2>": "error",
        "kunit/beta.<missing #3>": "error",
    }
    assert done.stdout == json.dumps(json.loads(done.stdout), sort_keys=True, indent=2) + "\n"


def test_suite_and_format_options(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("ok 1 selftests: size: get_size\n")
    done = lkft_parse(str(log), "--format", "kselftest", "--suite", "kselftest-x")
    assert json.loads(done.stdout) == {"kselftest-x/size_get_size": "pass"}
    done = lkft_parse(str(SAMPLE), "--format", "ltp")
    assert json.loads(done.stdout) == {}


def test_auto_detects_kirk_json(tmp_path: Path) -> None:
    report = tmp_path / "kirk.json"
    report.write_text(json.dumps({"results": [{"test_fqn": "abort01", "status": "warn"}]}))
    done = lkft_parse(str(report), "--suite", "ltp-syscalls")
    assert json.loads(done.stdout) == {"ltp-syscalls/abort01": "fail"}


def test_missing_log_is_one_line_error(tmp_path: Path) -> None:
    done = lkft_parse(str(tmp_path / "nope.log"))
    assert done.returncode == 2
    assert (
        done.stderr
        == f"lkft parse: error: no such log file: {tmp_path / 'nope.log'}; check the path\n"
    )


def test_bad_format_is_refused() -> None:
    done = lkft_parse(str(SAMPLE), "--format", "junit")
    assert done.returncode == 2
    assert "invalid choice: 'junit'" in done.stderr


def test_binary_garbage_does_not_crash(tmp_path: Path) -> None:
    log = tmp_path / "garbage.log"
    log.write_bytes(b"\xff\xfe\x00KTAP version 1\n1..1\nok 1 \xc3\x28bad utf8\r\n")
    done = lkft_parse(str(log))
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout).values()) == ["pass"]
