"""Reading logs: lines bounded in length (`lines.LogReader`), a bounded head to sniff."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_lkft.parsers import detect, formats
from pytest_lkft.parsers.lines import LogReader, clean


def bounded(line: bytes, limit: int) -> bytes:
    """What LogReader passes on of one line (see its docstring)."""
    if len(line) <= limit:
        return line
    head, rest = line[:limit], line[limit:]
    if b"\r" not in rest:
        return head
    return head + b"\r" + rest[rest.rfind(b"\r") + 1 :][:limit]


def expected(data: bytes, limit: int) -> bytes:
    return b"\n".join(bounded(line, limit) for line in data.split(b"\n"))


def read_all(reader: LogReader) -> bytes:
    out = b""
    while chunk := reader.read():
        out += chunk
    return out


# bytes with many newlines and carriage returns, read with tiny limits and blocks
LOGS = st.binary(max_size=300).map(lambda b: b.replace(b"a", b"\n").replace(b"b", b"\r"))


@given(LOGS, st.integers(1, 24), st.integers(1, 24), st.integers(0, 40))
def test_lines_and_blocks_are_the_log_with_long_lines_cut(
        data: bytes, limit: int, block: int, head: int) -> None:
    want = expected(data, limit)
    assert read_all(LogReader(io.BytesIO(data), limit, block)) == want
    lines = list(LogReader(io.BytesIO(data), limit, block).lines())
    assert "".join(lines) == want.decode("utf-8", "replace")
    assert all(line.endswith("\n") for line in lines[:-1])
    reader = LogReader(io.BytesIO(data), limit, block)  # some lines, then the rest as bytes
    first = "".join(line for _, line in zip(range(head), reader.lines(), strict=False))
    rest = read_all(reader)
    assert (first.encode() + rest).decode("utf-8", "replace") == want.decode("utf-8", "replace")


def test_what_a_terminal_shows_of_a_long_line_is_kept() -> None:
    """A progress bar that rewrites its line for ever, then the result: the reader keeps what
    follows the last carriage return, which is what `clean` reads."""
    data = b"".join(b"\rprogress %d%%" % (n % 100) for n in range(100_000)) + b"\rok 1 x\nok 2 y\n"
    lines = list(LogReader(io.BytesIO(data), limit=4096, block=1024).lines())
    assert [clean(line) for line in lines] == ["ok 1 x", "ok 2 y"]
    assert max(map(len, lines)) <= 2 * 4096 + 2


def test_sniffers_see_a_bounded_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Format detection looks at the first megabyte at most, whatever the log: 20,000 lines of
    4 kB made 80 MB of text for every sniffer before (and the old KTAP pattern took 31 s on
    20,000 blank lines)."""
    seen: list[int] = []
    monkeypatch.setattr(formats, "_REGISTRY", list(formats.registered()))
    formats.register(formats.Format("spy", lambda text: bool(seen.append(len(text))),
                                    lambda lines, suite: [], rank=0))
    log = tmp_path / "wide.log"
    log.write_text(("x" * 4000 + "\n") * 20_000 + "KTAP version 1\n1..1\nok 1 late\n")
    assert [c.id for c in detect.parse(log)] == ["kunit/late"]
    with log.open() as lines:
        assert detect.detect_format(lines) == "ktap"
    assert seen and max(seen) <= 1 << 20
