"""Crash detection on real console logs (tests/data/console, made by booting Debian kernels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_lkft.devices.crash import CrashDetector, load_crash_patterns

CONSOLE = Path(__file__).parent / "data" / "console"


def detect(text: str, chunk: int) -> CrashDetector:
    detector = CrashDetector(load_crash_patterns())
    for start in range(0, len(text), chunk):
        detector.feed(text[start:start + chunk])
    return detector


@pytest.mark.parametrize("log", sorted(CONSOLE.glob("*-sysrq-panic.log")), ids=lambda p: p.name)
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_sysrq_panic_is_one_fatal_crash_whatever_the_chunking(log: Path, chunk: int) -> None:
    detector = detect(log.read_text(), chunk)
    assert [(c.kind, c.fatal) for c in detector.crashes] == [("kernel-panic", True)]
    panic = detector.crashes[0]
    assert panic.line.endswith("Kernel panic - not syncing: sysrq triggered crash")
    assert len(panic.excerpt) > 5 and "Call trace:" in "\n".join(panic.excerpt) or \
        "Call Trace:" in "\n".join(panic.excerpt)
    assert detector.fatal is panic


def test_boot_log_without_crash_has_none() -> None:
    text = (CONSOLE / "qemu-arm64-6.1-sysrq-panic.log").read_text()
    clean = text[: text.index("sysrq: Trigger a crash")]
    assert detect(clean, 4096).crashes == []


@pytest.mark.parametrize(
    ("line", "kind", "fatal"),
    [
        ("[   12.3] BUG: KASAN: slab-out-of-bounds in foo+0x10/0x20", "kasan", False),
        ("[   12.3] BUG: KFENCE: use-after-free read in bar", "kfence", False),
        ("[   12.3] BUG: KCSAN: data-race in baz / qux", "kcsan", False),
        ("[   12.3] Internal error: Oops: 96000004 [#1] SMP", "kernel-oops", False),
        ("[   12.3] WARNING: CPU: 0 PID: 1 at kernel/foo.c:12 foo+0x1/0x2", "kernel-warning",
         False),
        ("[   12.3] ------------[ cut here ]------------", "kernel-warning", False),
        ("[   12.3] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", "kernel-fault", False),
        ("[   12.3] Unhandled fault: alignment exception (0x001) at 0x00", "kernel-fault", False),
        ("[   12.3] Kernel panic - not syncing: VFS: Unable to mount root fs", "kernel-panic",
         True),
    ],
)
def test_each_pattern_names_its_kind(line: str, kind: str, fatal: bool) -> None:
    detector = detect(line + "\n", 4096)
    assert [(c.kind, c.fatal) for c in detector.crashes] == [(kind, fatal)]


def test_lines_inside_a_trace_are_not_counted_twice() -> None:
    text = ("------------[ cut here ]------------\n"
            "WARNING: CPU: 1 PID: 5 at mm/slub.c:1 foo\n"
            "Call trace:\n ---[ end trace 0000000000000000 ]---\n"
            "WARNING: CPU: 0 PID: 9 at fs/bar.c:2 bar\n")
    detector = detect(text, 4096)
    assert [c.kind for c in detector.crashes] == ["kernel-warning", "kernel-warning"]
    assert detector.crashes[0].excerpt[-1].strip().startswith("---[ end trace")
