"""`lkft parse` run as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pytest_lkft.cli import parse
from pytest_lkft.parsers.model import Case, Result

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "synthetic-kunit-crash.ktap.log"
SAMPLE_RESULTS = {
    "kunit/alpha.alpha_first": "pass",
    "kunit/alpha.alpha_second": "fail",
    "kunit/beta.beta_first": "skip",
    "kunit/beta.<missing #2>": "error",
    "kunit/beta.<missing #3>": "error",
}
BUILT_IN = "kirk, lava, kselftest, ktap, kirk-console, ltp"


def lkft_parse(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest_lkft.cli", "parse", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def ktap_log(path: Path, cases: int) -> Path:
    """A KTAP document of `cases` passing cases."""
    lines = [f"ok {n} case_{n}\n" for n in range(1, cases + 1)]
    path.write_text(f"KTAP version 1\n1..{cases}\n" + "".join(lines))
    return path


def test_prints_json_results_as_the_log_reports_them() -> None:
    done = lkft_parse(str(SAMPLE))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == SAMPLE_RESULTS
    assert done.stdout == "{\n" + ",\n".join(
        f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in SAMPLE_RESULTS.items()) + "\n}\n"


def test_json_lines_output() -> None:
    done = lkft_parse(str(SAMPLE), "--output", "jsonl")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"test": test, "result": result} for test, result in SAMPLE_RESULTS.items()]


def test_suite_and_format_options(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("ok 1 selftests: size: get_size\n")
    done = lkft_parse(str(log), "--format", "kselftest", "--suite", "kselftest-x")
    assert json.loads(done.stdout) == {"kselftest-x/size_get_size": "pass"}


def test_a_log_nothing_recognises_is_one_line_and_exit_1(tmp_path: Path) -> None:
    log = tmp_path / "notes.txt"
    log.write_text("nothing\nhere is a test log\n")
    done = lkft_parse(str(log))
    assert (done.returncode, done.stdout) == (1, "{}\n")
    assert done.stderr == (f"lkft parse: no results in {log}: no format recognised it (tried "
                           f"{BUILT_IN}); pass --format if it is one of them\n")
    done = lkft_parse(str(log), "--output", "jsonl")
    assert (done.returncode, done.stdout) == (1, "")


def test_a_log_without_results_of_its_format(tmp_path: Path) -> None:
    done = lkft_parse(str(SAMPLE), "--format", "ltp")
    assert (done.returncode, done.stdout) == (1, "{}\n")
    assert done.stderr == f"lkft parse: no results in {SAMPLE} (read as ltp); check --format\n"


def test_an_empty_plan_is_no_results_either(tmp_path: Path) -> None:
    done = lkft_parse(str(ktap_log(tmp_path / "empty.ktap", 0)))
    assert done.returncode == 1
    assert done.stderr.endswith("(read as ktap); check --format\n")


# Runs a command, prints its peak RSS. A child's ru_maxrss includes what its parent held
# when it forked (Linux keeps the larger), so the command is started from this small
# process, not from pytest's.
PEAK_RSS = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    child = subprocess.Popen(sys.argv[3:], stdout=out, stderr=err)
    _, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def run_with_peak_memory(command: list[str], tmp_path: Path) -> tuple[int, str, str, int]:
    """Run `command`; its exit status, stdout, stderr and peak RSS in KiB."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, str(out), str(err), *command],
                          capture_output=True, text=True, check=True, timeout=600)
    status, peak_kib = map(int, done.stdout.split())
    return status, out.read_text(), err.read_text(), peak_kib


def test_a_300_mb_line_is_not_held(tmp_path: Path) -> None:
    """A line of 300 MB (written into a FIFO: no disk) then KTAP: the results after it come
    out, and the command's peak memory stays far below the line's size (all of the line
    was held, and decoded, before: over 600 MB)."""
    fifo = tmp_path / "console.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("wb") as log:
            for _ in range(300):
                log.write(b"0123456789abcdef" * 65536)  # 1 MiB, no newline
            log.write(b"\nKTAP version 1\n1..2\nok 1 after\nnot ok 2 long_line\n")

    threading.Thread(target=write, daemon=True).start()  # ends when lkft has read it all
    command = [sys.executable, "-m", "pytest_lkft.cli", "parse", str(fifo)]
    status, out, err, peak_kib = run_with_peak_memory(command, tmp_path)
    assert status == 0, err
    assert json.loads(out) == {"kunit/after": "pass", "kunit/long_line": "fail"}
    assert peak_kib < 100 * 1024


def test_broken_pipe_ends_quietly(tmp_path: Path) -> None:
    """`lkft parse LOG | head -1`: once head has gone, lkft ends as Unix tools do, without a
    traceback; its exit status is the shell's for SIGPIPE (141). The output (1 MB) is more
    than the pipe holds, so lkft is still writing when the reader closes."""
    log = ktap_log(tmp_path / "many.ktap", 30_000)
    command = [sys.executable, "-m", "pytest_lkft.cli", "parse", str(log)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.readline() == b"{\n"
        child.stdout.close()
        err = child.stderr.read()
        child.wait(timeout=60)
    assert (child.returncode, err) == (128 + signal.SIGPIPE, b"")


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12),
                          st.sampled_from(list(Result))), max_size=20))
def test_the_c_writer_writes_what_the_python_one_does(
        cases: list[tuple[str, str, Result]]) -> None:
    """`rows` in C (when built) and in Python give the same text, names needing JSON escapes
    included; both writers' output reads back as the cases."""
    batch = [Case(suite, name, result) for suite, name, result in cases]
    for prefix, middle, suffix in ((",\n  ", ': "', '"'), ('{"test": ', ', "result": "', '"}\n')):
        assert parse.rows(batch, prefix, middle, suffix) == parse.python_rows(
            batch, prefix, middle, suffix)
    out = io.StringIO()
    assert parse.write_jsonl(batch, out) == len(batch)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"test": case.id, "result": case.result.value} for case in batch]
    out = io.StringIO()
    parse.write_json(batch, out)
    assert json.loads(out.getvalue()) == {case.id: case.result.value for case in batch}


def test_the_c_writer_is_built() -> None:
    """The C module is what makes the command fast (bench/bench_parse.py); where it is
    not built the writer is the Python one, which the test above compares."""
    assert parse._jsonrows is not None, "build it: pip install -e . with gcc and python3-dev"


def test_kirk_report_from_a_pipe(tmp_path: Path) -> None:
    """A JSON report is read whole from its start; from a pipe (`lkft parse <(...)`), which
    cannot go back, as it comes."""
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    report = json.dumps({"results": [{"test_fqn": "abort01", "status": "pass"},
                                     {"test_fqn": "kill02", "status": "conf"}]}, indent=4)

    def write() -> None:
        with fifo.open("w") as out:
            out.write(report)

    threading.Thread(target=write, daemon=True).start()
    done = lkft_parse(str(fifo))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ltp/abort01": "pass", "ltp/kill02": "skip"}


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
