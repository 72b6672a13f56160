"""KTAP/TAP parser: structure, directives, prefixes, crashes (synthetic logs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_lkft.parsers import ktap
from pytest_lkft.parsers.lines import LineStream, clean, strip_prefix
from pytest_lkft.parsers.model import Case, Counts, Result

KUNIT_612 = """\
[    0.060000] KTAP version 1
[    0.060000] 1..1
[    0.060000]     KTAP version 1
[    0.060000]     # Subtest: example
[    0.060000]     # module: kunit_example_test
[    0.060000]     1..3
[    0.060000]     # example_simple_test: initializing
[    0.060000]     ok 1 example_simple_test
[    0.070000]     ok 2 example_skip_test # SKIP this test should be skipped
[    0.070000]         KTAP version 1
[    0.070000]         # Subtest: example_params_test
[    0.070000]     # example_params_test: initializing
[    0.070000]         ok 1 example value 3 # SKIP unsupported param value 3
[    0.070000]         not ok 2 example value 2
[    0.070000]     # example_params_test: pass:0 fail:1 skip:1 total:2
[    0.070000]     not ok 3 example_params_test
[    0.070000] # example: pass:1 fail:1 skip:1 total:3
[    0.070000] not ok 1 example
"""


def results(text: str) -> dict[str, str]:
    return {c.name: c.result.value for c in ktap.parse(text.splitlines())}


def test_kunit_612_suite_and_params_are_dotted_leaves() -> None:
    assert results(KUNIT_612) == {
        "example.example_simple_test": "pass",
        "example.example_skip_test": "skip",
        "example.example_params_test.example value 3": "skip",
        "example.example_params_test.example value 2": "fail",
    }


def test_case_carries_suite_reason_line_and_own_log() -> None:
    cases = ktap.parse(KUNIT_612.splitlines())
    simple, skip = cases[0], cases[1]
    assert simple == Case(
        suite="kunit",
        name="example.example_simple_test",
        result=Result.PASS,
        log=[
            "    # module: kunit_example_test",
            "    # example_simple_test: initializing",
            "    ok 1 example_simple_test",
        ],
        reason="",
        line=8,
    )
    assert skip.reason == "this test should be skipped"
    assert Counts.of(cases) == Counts(passed=1, failed=1, skipped=2)


def test_suite_option_names_the_suite() -> None:
    assert {c.id for c in ktap.parse(KUNIT_612.splitlines(), suite="kunit-arm64")} >= {
        "kunit-arm64/example.example_simple_test"
    }


def test_prefixes_are_stripped_per_line_not_by_width() -> None:
    # kunit_parser measures the width on the first KTAP line (indented here) and cuts
    # it from every line: `not ok 95` loses 4 characters and becomes `ok 95`.
    log = [
        "<6>[ 1351.687335]     KTAP version 1",
        "<6>[ 1351.688300]     # Subtest: Handshake API tests",
        "<6>[ 1351.688760]     1..2",
        "<6>[ 1351.733586]     ok 1 req_alloc",
        "<3>[ 1351.799741]     # req_destroy works: EXPECTATION FAILED at",
        "net/handshake/handshake-test.c:477",
        "<6>[ 1351.803368]     not ok 2 req_destroy works",
        "<6>[ 1351.806276] not ok 95 Handshake API tests",
    ]
    assert results("\n".join(log)) == {
        "Handshake API tests.req_alloc": "pass",
        "Handshake API tests.req_destroy works": "fail",
    }


def test_mixed_prefix_shapes_in_one_log() -> None:
    log = [
        "[    0.060000][    T1] KTAP version 1",
        "<5>1..3",
        "ok 1 plain",
        "[100000.000001] not ok 2 wide_timestamp",
        "<6>[   14.860000] ok 3 syslog",
    ]
    assert results("\n".join(log)) == {"plain": "pass", "wide_timestamp": "fail", "syslog": "pass"}


def test_strip_prefix_shapes() -> None:
    assert strip_prefix("[    0.060000] \tok 1 x") == "\tok 1 x"
    assert strip_prefix("[    0.060000][    T1] TAP version 14") == "TAP version 14"
    assert strip_prefix("<6>[ 1351.687335]     KTAP version 1") == "    KTAP version 1"
    assert strip_prefix("<5>Linux version") == "Linux version"
    assert strip_prefix("[  OK  ] Started") == "[  OK  ] Started"
    assert strip_prefix("<LAVA_SIGNAL_ENDRUN x>") == "<LAVA_SIGNAL_ENDRUN x>"


def test_clean_removes_cr_ansi_and_controls() -> None:
    assert clean("ok 1 x\r\n") == "ok 1 x"
    assert clean("progress 10%\rok 1 x") == "ok 1 x"
    assert clean("\x1b[1;32mok\x1b[0m 1 x") == "ok 1 x"
    assert clean("\x1bc\x1b[?7l\x1b[2J<5>[    0.000000] Linux") == "Linux"
    assert clean("a\x00b\x07c") == "abc"


def test_line_stream_counts_lines_and_peeks() -> None:
    stream = LineStream(["a\n", "b\n", "c\n"])
    assert stream.peek() == "a"
    assert stream.line_number == 0
    assert stream.pop() == "a"
    assert stream.line_number == 1
    assert list(stream) == ["b", "c"]
    assert stream.line_number == 3
    assert stream.at_end()
    assert stream.pop() == ""


def test_directives() -> None:
    log = """\
TAP version 14
1..9
ok 1 a # SKIP why
not ok 2 b # SKIP kunit_parser says skip
ok 3 c # skip lower case
ok 4 d # XFAIL known bug
not ok 5 e # TODO not done
not ok 6 f # TIMEOUT 45 seconds
not ok 7 g # ERROR setup failed
ok 8 h # XPASS surprise
not ok 9 i #  harness message
"""
    cases = {c.name: c for c in ktap.parse(log.splitlines())}
    assert {n: c.result.value for n, c in cases.items()} == {
        "a": "skip",
        "b": "skip",
        "c": "skip",
        "d": "xfail",
        "e": "xfail",
        "f": "fail",
        "g": "error",
        "h": "pass",
        "i": "fail",
    }
    assert cases["f"].reason == "TIMEOUT 45 seconds"
    assert cases["g"].reason == "setup failed"
    assert cases["i"].reason == "harness message"


def test_unnamed_results_are_kept_with_their_number() -> None:
    log = "TAP version 13\n1..3\nok 1 named\nok 2 # SKIP no name\nok 3 # XFAIL\n"
    cases = ktap.parse(log.splitlines())
    assert [(c.name, c.result.value, c.reason) for c in cases] == [
        ("named", "pass", ""),
        ("<unnamed #2>", "skip", "no name"),
        ("<unnamed #3>", "xfail", ""),
    ]


def test_hash_inside_name_and_hyphen() -> None:
    assert results("KTAP version 1\n1..2\nok 1 - test #1\nok 2 -- odd\n") == {
        "test #1": "pass",
        "-- odd": "pass",  # kunit_parser strips only "- "
    }


def test_spec_nesting_without_headers_names_from_result_line() -> None:
    log = "KTAP version 1\n1..1\n  KTAP version 1\n  1..2\n  ok 1 a\n  ok 2 b\nok 1 suite\n"
    assert results(log) == {"suite.a": "pass", "suite.b": "pass"}


def test_deep_nesting() -> None:
    log = """\
KTAP version 1
1..1
  KTAP version 1
  # Subtest: s
  1..1
    KTAP version 1
    # Subtest: t
    1..1
      KTAP version 1
      # Subtest: u
      ok 1 p
      ok 2 q
    ok 1 u
  ok 1 t
ok 1 s
"""
    assert results(log) == {"s.t.u.p": "pass", "s.t.u.q": "pass"}


def test_panic_makes_promised_cases_errors_with_the_panic_line() -> None:
    log = """\
[    0.060000] TAP version 14
[    0.060000] 1..2
[    0.060000] \t# Subtest: first
[    0.060000] \t1..3
[    0.060000] \tok 1 - a
[    0.060000] \tKernel panic - not syncing: VFS: Unable to mount root fs
[    0.060000] CPU: 0 PID: 1 Comm: swapper
"""
    cases = ktap.parse(log.splitlines())
    assert [(c.name, c.result.value) for c in cases] == [
        ("first.a", "pass"),
        ("first.<missing #2>", "error"),
        ("first.<missing #3>", "error"),
        ("<missing #2>", "error"),
    ]
    assert cases[1].reason == "Kernel panic - not syncing: VFS: Unable to mount root fs"


def test_truncated_log_reports_missing_cases() -> None:
    log = "KTAP version 1\n1..3\nok 1 a\nnot ok 2 b\n"
    cases = ktap.parse(log.splitlines())
    assert [(c.name, c.result.value) for c in cases][-1] == ("<missing #3>", "error")
    assert "ended" in cases[-1].reason


def test_crash_inside_param_test_without_plan() -> None:
    log = """\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: s
    1..2
        KTAP version 1
        # Subtest: params
        ok 1 p1
Bail out! machine fell over
"""
    assert results(log) == {
        "s.params.p1": "pass",
        "s.params.<missing #2>": "error",
        "s.<missing #2>": "error",
    }


def test_bail_out_reason() -> None:
    cases = ktap.parse("TAP version 13\n1..2\nok 1 a\nBail out! no device\n".splitlines())
    assert cases[-1].name == "<missing #2>"
    assert cases[-1].reason == "Bail out! no device"


def test_interleaved_kernel_messages_go_to_the_next_case_log() -> None:
    log = """\
TAP version 14
1..2
ok 1 a
[    1.000000] BTRFS: selftest: running
ok 2 b
"""
    cases = ktap.parse(log.splitlines())
    assert cases[1].log == ["BTRFS: selftest: running", "ok 2 b"]


def test_result_glued_after_a_kernel_message() -> None:
    log = "KTAP version 1\n1..2\nok 1 a\nDiff too high: 3078188..not ok 2 timer_create()\n"
    cases = ktap.parse(log.splitlines())
    assert [(c.name, c.result.value) for c in cases] == [("a", "pass"), ("timer_create()", "fail")]
    assert cases[1].log[0] == "Diff too high: 3078188.."


def test_kernel_message_glued_onto_a_result() -> None:
    log = "KTAP version 1\n1..1\nok 1 a_test[    2.000000] random: crng init done\n"
    assert results(log) == {"a_test": "pass"}


def test_header_with_no_children_is_an_error_case() -> None:
    log = "TAP version 14\n1..1\n  # Subtest: suite\n  1..1\n    # Subtest: case\n"
    log += "  ok 1 - case\nok 1 - suite\n"
    cases = ktap.parse(log.splitlines())
    assert [(c.name, c.result.value, c.reason) for c in cases] == [
        ("suite.case", "error", "0 tests run")
    ]


def test_empty_suite_skipped() -> None:
    log = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: kunit_fault\n    1..0\n"
    log += "ok 1 kunit_fault # SKIP \n"
    assert results(log) == {"kunit_fault": "skip"}


def test_no_ktap_no_cases() -> None:
    assert ktap.parse(["Linux version 6.1", "ok 1 not in a document"]) == []
    assert ktap.parse(["TAP version 14", "1..0"]) == []
    assert ktap.parse([]) == []


def test_two_documents_are_both_read() -> None:
    log = "KTAP version 1\n1..1\nok 1 built_in\nmodprobe foo\nKTAP version 1\n1..1\nok 1 module\n"
    assert results(log) == {"built_in": "pass", "module": "pass"}


def test_case_log_is_bounded() -> None:
    noise = [f"# line {i}" for i in range(ktap.LOG_LINES * 5)]
    lines = ["KTAP version 1", "1..1", *noise, "ok 1 chatty"]
    (case,) = ktap.parse(lines)
    assert len(case.log) == ktap.LOG_LINES + 1
    assert case.log[-1] == "ok 1 chatty"


def test_iter_cases_streams_before_the_end() -> None:
    def source() -> Iterator[str]:
        yield "KTAP version 1"
        yield "1..100000"
        for number in range(1, ktap.CHUNK_LINES * 2):
            yield f"ok {number} case_{number}"
        raise AssertionError("read past the second chunk")

    first = next(ktap.iter_cases(source()))
    assert first.name == "case_1"


def test_fast_and_line_by_line_paths_agree() -> None:
    body = [line + "\n" for line in KUNIT_612.splitlines()] * 3
    body += ["[    1.0] noise line\n", "1..x not a plan\n"] + body
    assert not ktap.needs_slow_path("".join(body))
    fast = ktap.parse(body)
    reader = ktap.ChunkReader(ktap.KtapParser())
    reader.read_slowly(body)
    reader.parser.finish(reader.number)
    slow = reader.drain()
    assert fast == slow
    assert len(fast) == 6 * 4


def test_huge_plan_gives_one_missing_range_not_millions() -> None:
    cases = ktap.parse(["KTAP version 1", "1..100000000", "ok 1 a"])
    assert [(c.name, c.result.value) for c in cases] == [
        ("a", "pass"),
        ("<missing #2..#100000000>", "error"),
    ]


def test_lone_hyphen_is_an_unnamed_result_on_both_paths() -> None:
    assert results("KTAP version 1\n1..1\nok 1 -\n") == {"<unnamed #1>": "pass"}


def test_memory_stays_bounded_on_garbage_nesting() -> None:
    parser = ktap.KtapParser()
    for number, line in enumerate(["KTAP version 1"] * 10_000, 1):
        parser.feed(line, number)
    assert len(parser.stack) == ktap.MAX_NESTING


def test_unnamed_block_that_never_closes_releases_its_cases() -> None:
    lines = ["KTAP version 1", "1..1", "  KTAP version 1"]
    lines += [f"  ok {n} c{n}" for n in range(1, ktap.MAX_BUFFERED + 3)]
    seen = 0
    for case in ktap.iter_cases(lines):
        seen += 1
        assert case.name.startswith("<unnamed #1>.c")
        if seen == ktap.MAX_BUFFERED + 1:
            break
    assert seen == ktap.MAX_BUFFERED + 1


TRICKY_BODIES = {
    "an empty line before a header": [
        *("KTAP version 1", "1..2", "noise", "", "    # Subtest: a", "    1..1"),
        *("    ok 1 x", "ok 1 a", "ok 2 b"),
    ],
    "a second plan": ["KTAP version 1", "1..2", "1..5", "ok 1 a", "ok 2 b"],
    "blanks around a name": ["KTAP version 1", "1..2", "ok 1 -   spaced  ", "ok 2 -\tb"],
    "a no-break space before ok": ["KTAP version 1", "1..2", "\u00a0ok 1 a", "ok 2 b", "ok 3 c"],
    "a document ending on a chunk's last line": ["KTAP version 1", "1..1", "ok 1 a"],
}


@pytest.mark.parametrize("prefix", ["", "[    0.5] ", "<6>[    0.5][    T1] "])
@pytest.mark.parametrize("body", TRICKY_BODIES.values(), ids=TRICKY_BODIES.keys())
def test_fast_path_agrees_on_tricky_lines(
    body: list[str], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ktap, "CHUNK_LINES", len(body))  # chunks end where documents do
    lines = [f"{prefix}{line}\n" for line in body] * 2
    reader = ktap.ChunkReader(ktap.KtapParser())
    reader.read_slowly(lines)
    reader.parser.finish(reader.number)
    slow = reader.drain()
    assert ktap.parse(lines) == slow
    assert len(slow) >= 2
