"""The KTAP parser's three paths give the same cases: `feed` line by line (the one
definition of the format), the C scanner (`_ktapscan`), and the regex fast path used
where the scanner is not built. Also the binary reader `iter_binary`."""

from __future__ import annotations

import io
import shutil
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_lkft.parsers import detect, ktap
from pytest_lkft.parsers.lines import decode_lines
from pytest_lkft.parsers.model import Case

BUILT = ktap.SCANNER
needs_scanner = pytest.mark.skipif(BUILT is None, reason="the C scanner is not built here")

LINES = [
    "KTAP version 1",
    "    KTAP version 1",
    "TAP version 14",
    "1..2",
    "    1..2",
    "    1..0",
    "    1..3 # SKIP",
    "1..x not a plan",
    "# Subtest: s",
    "    # Subtest: s",
    "    # Subtest: \tt  ",
    "        # Subtest: p",
    "    # s: diagnostic",
    "    # s: ok 1 in a diagnostic",
    "ok 1 s",
    "not ok 2 s",
    "ok 3 - t",
    "    ok 1 a",
    "    not ok 2 b",
    "    ok 3 - c",
    "    ok 4 -",
    "    ok 4 - ",
    "    ok 5 d # SKIP why",
    "    ok 6 e#f",
    "    ok 7 name[1.0] glued",
    "\tok 8 tabbed\t",
    "        ok 1 p1",
    "        not ok 2 p2",
    "    okay 9 not a result",
    "    ok9 no boundary",
    "ok 9",
    "not ok",
    "kernel: some message",
    "kernel: 3078188..not ok 4 glued",
    "",
    "   ",
    "Bail out! gone",
    "Kernel panic - not syncing: x",
    "reboot: System halted",
    "    ok 10 caf\u00e9",
    "    # caf\u00e9 diagnostic",
    "    ok 11 cr\r",
    "    ok 15 crs\r\r",
    "    # Subtest: crlf\r",
    "progress 10%\r    ok 16 overwritten",
    "    ok 17 \rcr inside",
    "    \x1b[1mok 12 escaped",
    "\u00a0ok 13 nbsp",
    "    ok 14 \udcff surrogate",
]
PREFIXES = ["", "[    0.060000] ", "[    0.06][    T1] ", "<6>[   14.86] ", "<5>", "[T12] ",
            "<1234>", "[ 1.] ", "[12.5", "<6>"]


@contextmanager
def scanner(module: ModuleType | None) -> Iterator[None]:
    """Parse with `module` as the C scanner (None: the regex fast path)."""
    saved = ktap.SCANNER
    ktap.SCANNER = module
    try:
        yield
    finally:
        ktap.SCANNER = saved


def line_by_line(lines: list[str]) -> list[Case]:
    reader = ktap.ChunkReader(ktap.KtapParser())
    reader.read_slowly(lines)
    reader.parser.finish(reader.number)
    return reader.drain()


def with_scanner(lines: list[str], module: ModuleType | None) -> list[Case]:
    with scanner(module):
        return ktap.parse(lines)


def test_the_scanner_is_built_where_a_compiler_and_headers_are() -> None:
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if shutil.which("gcc") is None or not include.is_file():
        pytest.skip(f"no gcc or no {include}: the install skips the scanner")
    assert BUILT is not None, "pip install did not build pytest_lkft/parsers/_ktapscan.c"


@needs_scanner
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(PREFIXES), st.sampled_from(LINES)), max_size=80),
    st.integers(1, 80),
)
def test_scanner_and_regex_path_equal_feed(body: list[tuple[str, str]], chunk: int) -> None:
    lines = [f"{prefix}{line}\n" for prefix, line in [("", "KTAP version 1"), *body]]
    expected = line_by_line(lines)
    saved = ktap.CHUNK_LINES
    ktap.CHUNK_LINES = chunk  # documents start and end anywhere in a chunk
    try:
        assert with_scanner(lines, BUILT) == expected
        assert with_scanner(lines, None) == expected
    finally:
        ktap.CHUNK_LINES = saved


@needs_scanner
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(PREFIXES), st.sampled_from(LINES)), max_size=60),
    st.binary(max_size=3),
    st.integers(1, 64),
    st.booleans(),
)
def test_binary_reader_equals_decoded_lines(
    body: list[tuple[str, str]], junk: bytes, block: int, final_newline: bool
) -> None:
    text = "".join(f"{prefix}{line}\n" for prefix, line in [("", "KTAP version 1"), *body])
    data = text.encode("utf-8", "surrogateescape") + junk  # junk: maybe not UTF-8
    if not final_newline:
        data = data.rstrip(b"\n")
    expected = line_by_line(list(decode_lines(io.BytesIO(data))))
    saved = ktap.BLOCK_BYTES
    ktap.BLOCK_BYTES = block  # lines cut across blocks, blocks with no line end
    try:
        for module in (BUILT, None):
            with scanner(module):
                assert list(ktap.iter_binary(io.BytesIO(data))) == expected
    finally:
        ktap.BLOCK_BYTES = saved


def test_a_case_log_keeps_its_last_lines_on_every_path() -> None:
    lines = ["KTAP version 1\n", "1..1\n", "# Subtest: s\n", "1..1\n"]
    lines += [f"# diagnostic {n}\n" for n in range(ktap.LOG_LINES + 50)] + ["ok 1 a\n"]
    expected = line_by_line(lines)
    assert len(expected[0].log) == ktap.LOG_LINES + 1
    assert expected[0].log[0] == "# diagnostic 50"
    for module in (BUILT, None):
        assert with_scanner(lines, module) == expected


def test_nesting_deeper_than_the_limit_on_every_path() -> None:
    depth = ktap.MAX_NESTING + 5
    lines = ["KTAP version 1\n", "1..1\n"]
    lines += [f"{'  ' * n}# Subtest: s{n}\n{'  ' * n}1..1\n" for n in range(1, depth)]
    lines = "".join(lines).splitlines(keepends=True) + [f"{'  ' * depth}ok 1 leaf\n"]
    expected = line_by_line(lines)
    assert expected
    for module in (BUILT, None):
        assert with_scanner(lines, module) == expected


def test_a_kunit_corpus_log_through_the_cli_reader(tmp_path: Path) -> None:
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "kunit"
    if not corpus.is_dir():
        pytest.skip(f"no corpus at {corpus} (../shared/corpus beside the repository)")
    for log in sorted(corpus.glob("*.log"))[:20]:
        with log.open("rb") as handle:
            expected = line_by_line(list(decode_lines(handle)))
        for module in (BUILT, None):
            with scanner(module):
                assert detect.parse(log, format="ktap") == expected, log.name


@needs_scanner
def test_scanner_rejects_what_is_not_its_input() -> None:
    assert BUILT is not None
    with pytest.raises(TypeError, match="scan"):
        BUILT.scan("text", 0, 0, [], ())
    with pytest.raises(ValueError, match="pos"):
        BUILT.scan(b"x\n", 5, 0, [], ())
