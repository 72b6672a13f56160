"""Text for the user's terminal from any thread, past pytest's output capture.

The first device boots in a thread while the main thread collects (`preboot`), and both
stream console text and download progress. Suspending pytest's capture manager from that
second thread races with the main thread, which suspends and resumes it around every
collector and test. So `Terminal` keeps a duplicate of the terminal's descriptor, made in
pytest_configure while capture is suspended, and writes to it under a lock: no capture
state is touched. The main thread's buffered pytest output is flushed first, so lines
stay in order.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _pytest._io import TerminalWriter  # what Config.get_terminal_writer() returns

TERMINAL_KEY = pytest.StashKey["Terminal"]()


class Terminal:
    """Write whole strings to a copy of a terminal descriptor, one writer at a time."""

    def __init__(self, fd: int, before_write: TerminalWriter | None = None) -> None:
        self.fd = os.dup(fd)
        self.tty = os.isatty(self.fd)
        self.lock = threading.Lock()
        self.before_write = before_write
        self.open_line = False  # a progress line rewritten in place is showing

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
        self._write(f"\r{text[:100]:<100}", start_line=not self.open_line)
        self.open_line = True

    def close(self) -> None:
        os.close(self.fd)

    def _write(self, text: str, start_line: bool = False) -> None:
        with self.lock:
            if threading.current_thread() is threading.main_thread() and self.before_write:
                self.before_write.flush()
            if start_line and (self.open_line or self._pytest_line_open()):
                text = "\n" + text.lstrip("\r")
            self.open_line = False
            data = text.encode("utf-8", "replace")
            while data:
                data = data[os.write(self.fd, data):]

    def _pytest_line_open(self) -> bool:
        """True when pytest's writer is in the middle of a line (`test_x.py::test_y `)."""
        return self.before_write is not None and self.before_write.width_of_current_line > 0


def open_terminal(config: pytest.Config) -> Terminal:
    """Duplicate the terminal's stdout now (capture is suspended in pytest_configure)."""
    writer = config.get_terminal_writer() if config.pluginmanager.get_plugin(
        "terminalreporter") else None
    terminal = config.stash[TERMINAL_KEY] = Terminal(1, writer)
    config.add_cleanup(terminal.close)
    return terminal


def terminal(config: pytest.Config) -> Terminal:
    """The session's terminal (opened by the plugin's pytest_configure)."""
    found = config.stash.get(TERMINAL_KEY, None)
    return found if found is not None else open_terminal(config)
