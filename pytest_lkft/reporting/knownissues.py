"""Known issues: expected failures that become xfail, as SQUAD's KnownIssue does.

The file is YAML, a list (or a mapping with a `known_issues` list) of entries:

    known_issues:
      - test: "ltp-syscalls/abort*"      # fnmatch pattern on the full suite/test name
        environments: [qemu-arm64]       # optional: default every environment
        reason: "https://bugs.example/123 hangs under TCG"
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pytest_lkft.errors import UserError
from pytest_lkft.parsers.model import Result

XFAILABLE = frozenset({Result.FAIL, Result.ERROR})


@dataclass(frozen=True)
class KnownIssue:
    """One expected failure: a test name pattern, where it applies, and why."""

    test: str
    reason: str
    environments: tuple[str, ...] = field(default_factory=tuple)

    def matches(self, name: str, environment: str) -> bool:
        """Tell whether this issue covers test `suite/test` on `environment`."""
        if self.environments and environment not in self.environments:
            return False
        return fnmatch.fnmatchcase(name, self.test)


def parse_entry(entry: object, where: str) -> KnownIssue:
    """Turn one YAML entry into a KnownIssue; `where` names it in errors."""
    if not isinstance(entry, dict) or not isinstance(entry.get("test"), str):
        raise UserError(f"{where}: expected a mapping with a 'test' pattern, got {entry!r}")
    envs = entry.get("environments") or []
    if isinstance(envs, str):
        envs = [envs]
    if not isinstance(envs, list) or not all(isinstance(e, str) for e in envs):
        raise UserError(f"{where}: 'environments' must be a list of names, got {envs!r}")
    return KnownIssue(entry["test"], str(entry.get("reason", "")), tuple(envs))


def load(path: str | Path) -> list[KnownIssue]:
    """Read a known-issues YAML file; raise UserError saying what is wrong in it."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise UserError(f"cannot read known issues file {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise UserError(f"known issues file {path} is not valid YAML: {error}") from error
    if isinstance(data, dict):
        data = data.get("known_issues")
    if data is None:
        return []
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a list of known issues under 'known_issues'")
    return [parse_entry(entry, f"{path}: entry {n}") for n, entry in enumerate(data, 1)]


def find(issues: list[KnownIssue], name: str, environment: str) -> KnownIssue | None:
    """Return the first known issue covering a test, or None."""
    return next((i for i in issues if i.matches(name, environment)), None)


def apply(
    issues: list[KnownIssue], name: str, environment: str, result: Result
) -> tuple[Result, str]:
    """Turn a covered fail or error into xfail; return the result and the reason."""
    if result not in XFAILABLE:
        return result, ""
    issue = find(issues, name, environment)
    if issue is None:
        return result, ""
    return Result.XFAIL, issue.reason or f"known issue {issue.test}"
