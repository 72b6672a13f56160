"""The wheel alone is the plugin: installed in a fresh venv, run from an empty directory.

No checkout on sys.path, no editable install: the device table, crash patterns and suites
must come from inside the package (docs/architecture.md, "Data"). The boot is real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, junit_results, need_qemu


def run(*command: str | Path, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; its output goes into the assertion message when it fails."""
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, text=True,
                          capture_output=True, check=False)
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.qemu
def test_the_wheel_boots_qemu_arm64_from_an_empty_directory(tmp_path: Path,
                                                            private_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    built = run(sys.executable, "-m", "pip", "wheel", "-v", "--no-deps",
                "-w", tmp_path / "dist", REPO)
    said = built.stdout + built.stderr
    assert "Deprecat" not in said  # e.g. `license = {text = ...}`
    assert "BuildBackendWarning" not in said  # e.g. a data folder missing from `packages`
    wheel = next((tmp_path / "dist").glob("pytest_lkft-*.whl"))
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "-q", wheel)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(LKFT_CACHE_DIR=str(private_cache), PATH=f"{venv / 'bin'}:{env['PATH']}")
    where = run(venv / "bin" / "python", "-c", "import pytest_lkft; print(pytest_lkft.__file__)",
                cwd=empty, env=env).stdout
    assert where.startswith(str(venv)), where  # the wheel's copy, not the checkout
    junit = tmp_path / "junit.xml"
    done = run(venv / "bin" / "pytest", "--lkft-device=qemu-arm64", "--lkft-tests=boot,smoke",
               f"--junitxml={junit}", cwd=empty, env=env)
    results = junit_results(junit)
    assert results["boot/boot"] == "pass", done.stdout
    assert results["smoke/uname"] == "pass"
    assert set(results.values()) == {"pass"}, results
    assert (empty / "lkft-results" / "qemu-arm64" / "boot" / "console.log").is_file()


def test_what_bootstrap_makes_in_the_checkout_is_ignored() -> None:
    """bootstrap.sh makes .venv in the checkout (issue 17): git status stays clean."""
    if not (REPO / ".git").exists():
        pytest.skip(f"{REPO} is no git checkout")
    made = [".venv/bin/python", "build/x", "pytest_lkft.egg-info/PKG-INFO"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *made], cwd=REPO,
                             text=True, capture_output=True, check=False).stdout.split()
    assert ignored == made
