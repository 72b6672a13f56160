"""`lkft junit merge`: JUnit files of several shards or lab machines into one."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_reporter import ITEMS, WIRING, lkft_args

from pytest_lkft.cli import main

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep HOME and the caches inside the test's tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LKFT_CACHE_DIR", str(tmp_path / "cache"))


def junit_of(pytester: pytest.Pytester, device: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the LTP-like items as `device` and return their JUnit file."""
    monkeypatch.setenv("DEVICE", device)
    monkeypatch.setenv("FAIL", "brk01")
    out = pytester.path / f"{device}.xml"
    pytester.runpytest(*lkft_args("--junitxml", str(out))).assert_outcomes(
        passed=4, failed=1, skipped=1, xfailed=1)
    return out


def test_merge_keeps_every_case_and_sums_counts(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makeconftest(WIRING)
    pytester.makepyfile(test_ltp=ITEMS)
    arm = junit_of(pytester, "qemu-arm64", monkeypatch)
    x86 = junit_of(pytester, "qemu-x86_64", monkeypatch)
    merged = pytester.path / "out" / "all.xml"
    assert main(["junit", "merge", str(arm), str(x86), "-o", str(merged)]) == 0
    assert f"{merged}: 14 tests from 2 files (2 failures, 0 errors, 4 skipped)" in (
        capsys.readouterr().out)
    root = ET.parse(merged).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "14"
    assert len(root.findall("testsuite")) == 2
    devices = [p.get("value") for p in root.iter("property") if p.get("name") == "lkft.device"]
    assert devices.count("qemu-arm64") == 6 and devices.count("qemu-x86_64") == 6
    assert len(root.findall("testsuite/testcase/failure")) == 2


def test_merge_says_which_file_is_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<html></html>")
    assert main(["junit", "merge", str(bad), "-o", str(tmp_path / "all.xml")]) == 2
    assert f"{bad} is not JUnit XML: its root is <html>, not <testsuites>" in (
        capsys.readouterr().err)
