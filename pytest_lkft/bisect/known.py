"""Starting from results already known: two builds of a project, in the store or in SQUAD.

The revisions come from each build's metadata (`git_commit`, `git_sha`, `git_describe`,
the first one the tree knows; else the build's version itself, e.g. `v6.1.99`), the
selection from the regressions between the two builds, as `lkft compare` lists them, and
the device from their environment when there is one. SQUAD is read through its REST API
(`/api/projects/`, `/api/projects/<id>/builds/`, `/api/builds/<id>/metadata/`,
`/api/builds/<id>/tests/`), and compared the way the store compares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_lkft.errors import InfraError, UserError
from pytest_lkft.reporting.store import Comparison, Store, TestKey, compare_results, split_project

REVISION_KEYS = ("git_commit", "git_sha", "git_describe")
PAGE = 1000
TIMEOUT = 60


@dataclass(frozen=True)
class Known:
    """What two known builds say: candidate revisions, the regressions, their devices."""

    good: list[str] = field(default_factory=list)  # the good build's revisions, best first
    bad: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    origin: str = ""


def candidates(metadata: dict[str, Any], version: str) -> list[str]:
    """Revisions a build's metadata names, best first, then its version."""
    found = []
    for key in REVISION_KEYS:
        value = metadata.get(key)
        values = value if isinstance(value, list) else [value]
        found += [str(v) for v in values if v]
    return list(dict.fromkeys([*found, version]))


def known(comparison: Comparison, good: list[str], bad: list[str], origin: str,
          device: str | None) -> Known:
    """The selection (regressions, on `device` when given) and the devices they were on."""
    regressions = [c for c in comparison.regressions if device in (None, c.environment)]
    if not regressions:
        where = f" on {device}" if device else ""
        raise UserError(f"{origin}: no regressions{where} between {comparison.base} and "
                        f"{comparison.target}; name the failing case with --test")
    tests = sorted({c.name for c in regressions})
    devices = sorted({c.environment for c in regressions})
    return Known(good, bad, tests, devices, origin)


def from_store(store: Store, project: str, good: str, bad: str,
               device: str | None) -> Known:
    """Two builds of the embedded store."""
    group, name = split_project(project)
    comparison = store.compare(group, name, good, bad)
    metadata = [{k: v for run in store.runs(group, name, version) for k, v in
                 run.metadata.items()} for version in (good, bad)]
    return known(comparison, candidates(metadata[0], good), candidates(metadata[1], bad),
                 f"store project {project}", device)


class SquadReader:
    """Reads builds and their tests from a SQUAD server's REST API."""

    def __init__(self, url: str) -> None:
        import requests  # here: every bisect-step would pay its import (60 ms), few use it

        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.environments: dict[str, str] = {}

    def json(self, path_or_url: str, **params: str | int) -> Any:
        """GET one API page as JSON; one-line errors naming the URL."""
        import requests

        url = path_or_url if path_or_url.startswith("http") else self.url + path_or_url
        try:
            response = self.session.get(url, params=params or None, timeout=TIMEOUT)
        except requests.RequestException as error:
            raise InfraError(f"cannot reach SQUAD at {self.url}: {error}") from None
        if response.status_code != 200:
            raise InfraError(f"SQUAD answered {response.status_code} to {response.url}")
        return response.json()

    def build_id(self, project: str, version: str) -> int:
        """The id of a project's build; a UserError naming what is missing."""
        group, name = split_project(project)
        found = self.json("/api/projects/", slug=name, group__slug=group)["results"]
        if not found:
            raise UserError(f"no project {project} on SQUAD {self.url}")
        builds = self.json(f"/api/projects/{found[0]['id']}/builds/", version=version)
        if not builds["results"]:
            raise UserError(f"no build {version!r} in project {project} on SQUAD {self.url}")
        return int(builds["results"][0]["id"])

    def results(self, build_id: int) -> dict[TestKey, set[str]]:
        """Each test of a build and the statuses its runs gave (every page)."""
        found: dict[TestKey, set[str]] = {}
        page: Any = self.json(f"/api/builds/{build_id}/tests/", limit=PAGE,
                              fields="name,status,environment")
        while True:
            for test in page["results"]:
                key = TestKey(self.environment(test["environment"]), test["name"])
                found.setdefault(key, set()).add(str(test["status"]))
            if not page.get("next"):
                return found
            page = self.json(page["next"])

    def environment(self, url: str) -> str:
        """An environment's slug from its API URL (asked once)."""
        if url not in self.environments:
            self.environments[url] = str(self.json(url)["slug"])
        return self.environments[url]


def from_squad(reader: SquadReader, project: str, good: str, bad: str,
               device: str | None) -> Known:
    """Two builds of a SQUAD project."""
    ids = [reader.build_id(project, version) for version in (good, bad)]
    comparison = compare_results(good, bad, reader.results(ids[0]), reader.results(ids[1]))
    metadata = [reader.json(f"/api/builds/{build}/metadata/") for build in ids]
    return known(comparison, candidates(metadata[0], good), candidates(metadata[1], bad),
                 f"SQUAD {reader.url} project {project}", device)
