"""No input makes a parser raise or hang: random bytes, non-UTF-8, CRLF, ANSI, cuts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_lkft.parsers import detect, kirk
from pytest_lkft.parsers.model import Case, Result

FORMATS = ("ktap", "kselftest", "ltp", "lava", "kirk", "auto")
FRAGMENTS = [
    "KTAP version 1",
    "TAP version 13",
    "1..3",
    "1..0 # SKIP",
    "# Subtest: suite",
    "    KTAP version 1",
    "    # Subtest: inner",
    "    ok 1 case",
    "    not ok 2 case # SKIP",
    "ok 1 - suite",
    "not ok 3",
    "ok # TODO",
    "ok 5 name # XFAIL x",
    "Bail out! boom",
    "Kernel panic - not syncing: x",
    "# selftests: c: t",
    "# ok 1 # SKIP reason",
    "# # not ok 2 deep",
    "not ok 1 selftests: c: t # TIMEOUT 45 seconds",
    "abort01   PASS   0",
    "tag=a stime=1 dur=0 exit=exited stat=32 core=no",
    "<<<test_start>>>",
    "tag=b stime=1",
    "<<<test_output>>>",
    "duration=0 termination_type=exited termination_id=4 corefile=no",
    "Suite: syscalls",
    "abort01: pass  (0.1s)",
    "<LAVA_SIGNAL_STARTRUN 0_x 1>",
    "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=a RESULT=pass MEASUREMENT=x UNITS=s>",
    '- {"dt": "x", "lvl": "results", "msg": {"case": "a", "definition": "0_b", "result": "pass"}}',
    '- {"dt": "x", "lvl": "results", "msg": !!python/none',
    "{",
    '{"results": [{"test_fqn": null}]}',
]
PREFIXES = [
    "",
    "[    0.060000] ",
    "[    0.06][    T1] ",
    "<6>[   14.86] ",
    "<5>",
    "\x1b[1;31m",
    " ",
]
ENDINGS = ["\n", "\r\n", "\r", ""]


def check(cases: list[Case]) -> None:
    for case in cases:
        assert isinstance(case.result, Result)
        assert isinstance(case.name, str) and isinstance(case.suite, str)


@st.composite
def logs(draw: st.DrawFn) -> list[str]:
    count = draw(st.integers(0, 40))
    lines = []
    for _ in range(count):
        text = draw(st.sampled_from(FRAGMENTS) | st.text(max_size=30))
        cut = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:cut]  # truncated line
        lines.append(draw(st.sampled_from(PREFIXES)) + text + draw(st.sampled_from(ENDINGS)))
    return lines


SETTINGS = settings(max_examples=60, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(logs(), st.sampled_from(FORMATS))
def test_structured_garbage_never_raises(lines: list[str], fmt: str) -> None:
    check(detect.parse(lines, format=fmt))


@SETTINGS
@given(st.binary(max_size=2000), st.sampled_from(FORMATS))
def test_random_bytes_never_raise(data: bytes, fmt: str) -> None:
    text = data.decode("utf-8", errors="replace")
    check(detect.parse(text.splitlines(keepends=True), format=fmt))


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes_as_a_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "log"
        path.write_bytes(data)
        check(detect.parse(path))


@SETTINGS
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["results", "test_fqn", "status", "test", "log", "retval", "duration"]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_kirk_any_json_shape(value: object) -> None:
    check(kirk.parse_text(json.dumps(value)))


@settings(max_examples=20, deadline=2000)
@given(st.integers(0, 10_000))
def test_truncated_ktap_always_ends_cleanly(cut: int) -> None:
    body = "\n".join(
        ["KTAP version 1", "1..3"]
        + [
            f"    KTAP version 1\n    # Subtest: s{i}\n    1..2\n"
            f"    ok 1 a\n    ok 2 b\nok {i} s{i}"
            for i in range(1, 4)
        ]
    )
    cases = detect.parse(body[: cut % (len(body) + 1)].splitlines(), format="ktap")
    check(cases)
    assert len(cases) <= 6


KTAP_LINES = [
    "KTAP version 1",
    "    KTAP version 1",
    "1..2",
    "    1..2",
    "    1..0",
    "# Subtest: s",
    "    # Subtest: s",
    "        # Subtest: p",
    "    # s: diagnostic",
    "ok 1 s",
    "not ok 2 s",
    "    ok 1 a",
    "    not ok 2 b",
    "    ok 3 - c",
    "    ok 4 -",
    "    ok 5 d # SKIP why",
    "        ok 1 p1",
    "        not ok 2 p2",
    "    ok 2 p",
    "ok 9",
    "kernel: some message",
]


@settings(max_examples=80, deadline=1000)
@given(st.lists(st.sampled_from(KTAP_LINES), max_size=60), st.sampled_from(PREFIXES[:5]))
def test_ktap_fast_path_equals_line_by_line(body: list[str], prefix: str) -> None:
    from pytest_lkft.parsers import ktap

    lines = [f"{prefix}{line}\n" for line in ["KTAP version 1", *body]]
    reader = ktap.ChunkReader(ktap.KtapParser())
    reader.read_slowly(lines)
    reader.parser.finish(reader.number)
    assert ktap.parse(lines) == reader.drain()


HUGE = "9" * 5000  # past the 4300 digits Python's int() converts


@pytest.mark.parametrize(("fmt", "lines"), [
    ("ktap", ["KTAP version 1", f"1..{HUGE}", "ok 1 a", f"ok {HUGE} b"]),
    ("kselftest", ["TAP version 13", f"1..{HUGE}", f"ok {HUGE} selftests: x: y"]),
    ("ltp", [f"tag=t stime=1 dur=0 exit=exited stat={HUGE} core=no cu=0 cs=0",
             "t 1 TPASS : ok", f"duration=0 termination_type=exited termination_id={HUGE}"]),
])
def test_absurdly_long_numbers_do_not_raise(fmt: str, lines: list[str]) -> None:
    cases = list(detect.parse(lines, format=fmt, suite="s"))
    assert cases  # parsed, with the number capped instead of a ValueError
