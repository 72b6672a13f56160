"""Text for the user's terminal from any thread, past pytest's output capture.

The first device boots in a thread while the main thread collects (`preboot`), and both
stream console text and download progress. Suspending pytest's capture manager from that
second thread races with the main thread, which suspends and resumes it around every
collector and test. So `Terminal` keeps a duplicate of the terminal's descriptor, made in
pytest_configure while capture is suspended, and writes to it under a lock: no capture
state is touched. The main thread's buffered pytest output is flushed first, so lines
stay in order.

A progress line (a download, a build) must not break pytest's own output, whose writer
counts the columns of its current line (`-q` dots, `-v`'s node id waiting for its
PASSED) and is asked for that count at each write, as pytest's terminal reporter only
exists once every plugin's pytest_configure has run (issue 17). On a terminal the progress
goes on a line of its own below pytest's, rewritten in place and cut to the terminal's
width (a wrapped line cannot be rewritten); when it ends, or before anything else is
written, it is erased and the cursor goes back to the end of pytest's line, so pytest
goes on as if nothing had been there; pytest's own writes take it away first (another
thread draws it while pytest collects and reports, `ProgressGuard`). Elsewhere (a pipe, a
CI log) each report is a line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _pytest._io import TerminalWriter  # what Config.get_terminal_writer() returns

TERMINAL_KEY = pytest.StashKey["Terminal"]()
ERASE_LINE = "\r\x1b[K"  # to the line's start, erase it
UP = "\x1b[1A"  # one line up
RIGHT = "\x1b[{}C"  # that many columns right


class Terminal:
    """Write whole strings to a copy of a terminal descriptor, one writer at a time.

    Lifecycle: made once per session (`open_terminal`); `write` and `line` from any thread;
    `rewrite` shows a progress line until `end_progress` (or the next `write` or `line`)
    takes it away; `close` at the session's end.
    """

    def __init__(self, fd: int, pytest_writer: Callable[[], TerminalWriter | None]) -> None:
        self.fd = os.dup(fd)
        self.tty = os.isatty(self.fd)
        self.lock = threading.Lock()
        self.pytest_writer = pytest_writer
        self.progress_shown = False  # a progress line is on the screen
        self.below = 0  # it is below pytest's line, which ends in that column (0: not)
        self.ended = -1  # pytest's column when a line of ours last ended its line

    def write(self, text: str) -> int:
        """Write `text` as it is (console output)."""
        self._write(text)
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered here; part of the text-stream protocol."""

    def line(self, text: str) -> None:
        """Write `text` on a line of its own."""
        self._write(f"{text}\n", start_line=True)

    def rewrite(self, text: str) -> None:
        """Show a progress line: rewritten in place on a tty, a new line otherwise."""
        if not self.tty:
            self.line(text)
            return
        with self.lock:
            self._flush_pytest()
            if self.progress_shown:
                start = "\r"
            else:
                self.below = self._open_column()
                start = "\n" if self.below else "\r"
            width = os.get_terminal_size(self.fd).columns
            self._raw(f"{start}{text[: max(width - 1, 1)]}\x1b[K")
            self.progress_shown = True

    def end_progress(self) -> None:
        """Take the progress line away, the cursor back where pytest's output was."""
        with self.lock:
            self._erase_progress()

    def close(self) -> None:
        os.close(self.fd)

    def _write(self, text: str, start_line: bool = False) -> None:
        with self.lock:
            self._flush_pytest()
            self._erase_progress()
            if start_line:
                column = self._open_column()
                if column:
                    text = "\n" + text
                self.ended = column
            self._raw(text)

    def _erase_progress(self) -> None:
        if not self.progress_shown:
            return
        back = ""
        if self.below:
            back = UP + "\r" + RIGHT.format(self.below)
        self._raw(ERASE_LINE + back)
        if self.below:
            self.ended = -1  # back on pytest's line
        self.progress_shown, self.below = False, 0

    def _flush_pytest(self) -> None:
        """Write out what the main thread's pytest writer buffered, so lines stay in order."""
        writer = self.pytest_writer()
        if writer is not None and threading.current_thread() is threading.main_thread():
            writer.flush()

    def _open_column(self) -> int:
        """The column pytest's line ends in (`test_x.py::test_y `), 0 when the cursor is at a
        line's start (pytest's writer counts its own text only: once a line of ours ended
        its line, it is open again only when pytest has written since)."""
        writer = self.pytest_writer()
        column = 0 if writer is None else writer.width_of_current_line
        return 0 if column == self.ended else column

    def _raw(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self.fd, data):]


class ProgressGuard:
    """Takes a progress line away before pytest's terminal reporter writes (its hooks)."""

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    @pytest.hookimpl(tryfirst=True)
    def pytest_collectreport(self) -> None:
        self.terminal.end_progress()

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self) -> None:
        self.terminal.end_progress()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self) -> None:
        self.terminal.end_progress()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self) -> None:
        self.terminal.end_progress()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logfinish(self) -> None:
        self.terminal.end_progress()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self.terminal.end_progress()


def pytest_writer(config: pytest.Config) -> TerminalWriter | None:
    """pytest's terminal writer, once its terminal reporter exists (None with -p no:terminal)."""
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        return None
    return config.get_terminal_writer()


def open_terminal(config: pytest.Config) -> Terminal:
    """Duplicate the terminal's stdout now (capture is suspended in pytest_configure)."""
    terminal = config.stash[TERMINAL_KEY] = Terminal(1, lambda: pytest_writer(config))
    config.add_cleanup(terminal.close)
    if terminal.tty:
        config.pluginmanager.register(ProgressGuard(terminal), "lkft-progress-guard")
    return terminal


def terminal(config: pytest.Config) -> Terminal:
    """The session's terminal (opened by the plugin's pytest_configure)."""
    found = config.stash.get(TERMINAL_KEY, None)
    return found if found is not None else open_terminal(config)
