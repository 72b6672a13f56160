"""Result sinks: where a session's results go once it ends (the store, SQUAD, ...).

The pytest reporter (`pytest_lkft.pytestplugin.reporter`) collects one `RunRecord` per
device and hands the list to each sink in turn; each sink says in lines what it did, for
the terminal summary. The built-in sinks are the embedded store (always) and SQUAD (with
`--lkft-squad-url`); a plugin adds one through the `pytest_lkft_result_sinks` hook.
Recipe: docs/architecture.md.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pytest_lkft.reporting.settings import Settings
from pytest_lkft.reporting.store import Comparison, RunRecord, Store


@dataclass(frozen=True)
class Delivery:
    """One device's run and the console logs of its suite runs, in order."""

    record: RunRecord
    console_logs: Sequence[str]


class ResultSink(Protocol):
    """Takes the session's runs once, at its end; returns lines for the terminal."""

    name: str

    def deliver(self, runs: Sequence[Delivery]) -> list[str]: ...


class StoreSink:
    """The embedded store: records the runs and compares with the previous build."""

    name = "store"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.comparison: Comparison | None = None

    def deliver(self, runs: Sequence[Delivery]) -> list[str]:
        """Record the runs; say where, and the regressions and fixes, or why not."""
        settings = self.settings
        try:
            self.record([run.record for run in runs])
        except (sqlite3.Error, OSError) as error:
            return [f"lkft: results NOT recorded in {settings.store}: {error}; fix it or "
                    "choose another file with --lkft-store"]
        build = runs[0].record.build if runs else ""
        where = f"{settings.group}/{settings.project} build {build}"
        return [f"recorded in {settings.store} as {where}", *comparison_lines(self.comparison)]

    def record(self, records: list[RunRecord]) -> None:
        """Write the runs (and the known issues) to the store, compare with the previous build."""
        group, project = self.settings.group, self.settings.project
        with Store(self.settings.store) as store:
            for issue in self.settings.known_issues:
                store.add_known_issue(group, project, issue.test, list(issue.environments),
                                      issue.reason)
            for record in records:
                store.record(record)
            build = records[0].build if records else ""
            previous = store.previous_build(group, project, build)
            if previous is not None:
                self.comparison = store.compare(group, project, previous, build)


class SquadSink:
    """A SQUAD server: each run submitted; what cannot be sent is spooled for `lkft push`."""

    name = "squad"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def deliver(self, runs: Sequence[Delivery]) -> list[str]:
        """Submit each run; one line per run saying where it went."""
        from pytest_lkft.reporting.squad import (  # requests, only when used
            SquadClient,
            push_known_issues,
        )

        client = SquadClient(self.settings.squad_url)
        # known issues first: SQUAD applies its own when a run arrives (xfail there too)
        pushed = push_known_issues(client, self.settings.group, self.settings.project,
                                   self.settings.known_issues,
                                   [run.record.environment for run in runs])
        return [*([pushed] if pushed else []),
                *(client.submit_or_spool(run.record, list(run.console_logs)) for run in runs)]


def built_in_sinks(settings: Settings) -> list[ResultSink]:
    """The store, and SQUAD when a URL is set."""
    sinks: list[ResultSink] = [StoreSink(settings)]
    if settings.squad_url:
        sinks.append(SquadSink(settings))
    return sinks


def comparison_lines(comparison: Comparison | None) -> list[str]:
    """Regressions and fixes against the previous build, or why there are none."""
    if comparison is None:
        return ["no previous build of this project in the store: nothing to compare"]
    c = comparison
    lines = [f"compared with previous build {c.base}: {len(c.regressions)} regressions,"
             f" {len(c.fixes)} fixes, {len(c.flaky)} flaky, {len(c.missing)} missing"]
    lines += [f"  REGRESSION {x.environment}: {x.name} ({x.before} -> {x.after})"
              for x in c.regressions]
    lines += [f"  FIX {x.environment}: {x.name} ({x.before} -> {x.after})" for x in c.fixes]
    lines += [f"  FLAKY {k.environment}: {k.name}" for k in c.flaky]
    return lines
