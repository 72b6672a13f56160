"""Submitting test runs to SQUAD, with retries and a disk spool so nothing is lost.

One submit per device run: `POST /api/submit/<group>/<project>/<build>/<environment>`
with `tests`, `metrics` and `metadata` as uploaded files (SQUAD caps plain form fields
at 10 MB) and the console log as an `attachment`. Facts about SQUAD 1.98 this follows:
path names must match `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (an invalid character silently
truncates the name, so names are cleaned first); only pass and fail are results;
a 400 "There is already a test run with job_id" means the run is already there, unless
that run was never processed (a 500 half way leaves one): then it is reported, not trusted.

The token comes only from `LKFT_SQUAD_TOKEN` and goes only into the Authorization
header: never into metadata, the spool, logs or messages. Without a token nothing is
attempted (SQUAD refuses every submit): the runs are spooled and the summary says why.
A refused connection (nothing listens there) is not retried: the run is spooled at once.

Known issues reach SQUAD through its REST API (`push_known_issues`): SQUAD applies its
own known issues when a run arrives, so they are created or updated before the submits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pytest_lkft.reporting.knownissues import KnownIssue
from pytest_lkft.reporting.settings import spool_dir
from pytest_lkft.reporting.store import RunRecord
from pytest_lkft.settings.options import TOKEN_ENV

NOT_SLUG = re.compile(r"[^a-zA-Z0-9_.-]+")
ALREADY = "already a test run with job_id"
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
SPOOL_FILE = "submission.json"
# LKFT result -> what SQUAD records; xfail stays a fail so SQUAD's own known issues apply
SQUAD_RESULT = {"pass": "pass", "fail": "fail", "error": "fail", "xfail": "fail", "skip": "skip"}


NO_TOKEN = f"{TOKEN_ENV} is empty and SQUAD refuses submissions without a token"


class SubmitError(Exception):
    """A submission did not reach SQUAD; the message says what SQUAD or the network said."""


def refused(error: BaseException) -> bool:
    """Tell whether a requests error comes from a refused connection (nothing listening)."""
    seen: list[BaseException] = [error]
    while seen:
        current = seen.pop()
        if isinstance(current, ConnectionRefusedError):
            return True
        seen += [e for e in (*current.args, getattr(current, "reason", None),
                             current.__cause__, current.__context__)
                 if isinstance(e, BaseException) and e is not current]
    return False


def clean_name(value: str) -> str:
    """Make a name SQUAD accepts whole: invalid characters become '-'."""
    cleaned = NOT_SLUG.sub("-", value).lstrip("_.-")
    return cleaned or "unnamed"


@dataclass
class Submission:
    """Everything one SQUAD submit sends; JSON-serialisable so it can be spooled."""

    group: str
    project: str
    build: str
    environment: str
    tests: str
    metrics: str
    metadata: str
    job_id: str
    attachments: dict[str, str] = field(default_factory=dict)  # file name -> path

    @property
    def path(self) -> str:
        """The submit endpoint's path for this run."""
        return f"/api/submit/{self.group}/{self.project}/{self.build}/{self.environment}"


def tests_json(record: RunRecord) -> str:
    """The `tests` file: `suite/test` -> {result, log}."""
    data: dict[str, dict[str, str]] = {}
    for case in record.cases:
        entry = {"result": SQUAD_RESULT[case.result.value]}
        if case.log or case.reason:
            entry["log"] = "\n".join([case.reason, *case.log]).strip()
        data[f"{case.suite}/{case.name}"] = entry
    return json.dumps(data)


def submission_from(record: RunRecord, console_log: str | Sequence[str] = "") -> Submission:
    """Turn a stored test run into a SQUAD submission with clean names."""
    metrics = {k: {"value": m.value, "unit": m.unit} for k, m in record.metrics.items()}
    metadata = {**record.metadata, "job_id": record.job_id or ""}
    if record.job_url:
        metadata["job_url"] = record.job_url
    metadata.pop("token", None)
    return Submission(
        group=clean_name(record.group),
        project=clean_name(record.project),
        build=clean_name(record.build),
        environment=clean_name(record.environment),
        tests=tests_json(record),
        metrics=json.dumps(metrics),
        metadata=json.dumps(metadata, sort_keys=True),
        job_id=record.job_id or "",
        attachments=attachments(console_log),
    )


def attachments(logs: str | Sequence[str]) -> dict[str, str]:
    """Attachment name -> path for each existing console log (one per suite run:
    `<suite>-console.log` when several runs of a device each kept their own)."""
    paths = [p for p in ([logs] if isinstance(logs, str) else logs) if log_exists(p)]
    if len(paths) == 1:
        return {Path(paths[0]).name: paths[0]}
    return {f"{Path(p).parent.name}-{Path(p).name}": p for p in paths}


def log_exists(path: str) -> bool:
    """Tell whether a console log path names a readable file."""
    return bool(path) and Path(path).is_file()


class Backoff(Retry):
    """urllib3's Retry with the client's delays and sleep: 5xx answers and broken
    connections are retried, each delay alternately stretched by a quarter so that clients
    started together do not retry in step; a refused connection is not retried."""

    delays: tuple[float, ...] = ()
    sleeper: Callable[[float], None] = staticmethod(time.sleep)

    @classmethod
    def after(cls, delays: tuple[float, ...], sleep: Callable[[float], None]) -> Backoff:
        """A retry policy of len(delays) retries, sleeping `delays` in turn."""
        retry = cls(total=len(delays), connect=0, status_forcelist=range(500, 600),
                    allowed_methods=None, raise_on_status=False,
                    respect_retry_after_header=False)
        retry.delays, retry.sleeper = delays, sleep
        return retry

    def new(self, **params: Any) -> Backoff:
        retry = super().new(**params)
        retry.delays, retry.sleeper = self.delays, self.sleeper
        return retry

    def get_backoff_time(self) -> float:
        attempt = len(self.history) - 1
        if not 0 <= attempt < len(self.delays):
            return 0.0
        return self.delays[attempt] * (1 + attempt % 2 * 0.25)

    def sleep(self, response: Any = None) -> None:
        self.sleeper(self.get_backoff_time())


class SquadClient:
    """Posts submissions to one SQUAD server, retrying connection errors and 5xx."""

    def __init__(
        self,
        url: str,
        delays: tuple[float, ...] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 600.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        retry = Backoff.after(RETRY_DELAYS if delays is None else delays, sleep)
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))

    def headers(self) -> dict[str, str]:
        """The Authorization header, when LKFT_SQUAD_TOKEN is set."""
        token = os.environ.get(TOKEN_ENV, "")
        return {"Authorization": f"Token {token}"} if token else {}

    def post_once(self, sub: Submission) -> requests.Response:
        """One POST of the submission's files."""
        files: list[tuple[str, tuple[str, bytes, str]]] = [
            ("tests", ("tests.json", sub.tests.encode(), "application/json")),
            ("metrics", ("metrics.json", sub.metrics.encode(), "application/json")),
            ("metadata", ("metadata.json", sub.metadata.encode(), "application/json")),
        ]
        for name, path in sub.attachments.items():
            files.append(("attachment", (name, Path(path).read_bytes(), "text/plain")))
        return self.session.post(
            self.url + sub.path, files=files, headers=self.headers(), timeout=self.timeout
        )

    def submit(self, sub: Submission) -> str:
        """Send one submission; return 'submitted' or 'already submitted', else SubmitError.

        5xx answers and broken connections are retried by the session (`Backoff`); a
        refused connection is not: nothing listens there, so the run is spooled at once.
        """
        try:
            response = self.post_once(sub)
        except requests.RequestException as error:
            if refused(error):
                raise SubmitError(f"{self.url} refused the connection") from None
            raise SubmitError(f"cannot reach {self.url}: {type(error).__name__}") from None
        if response.status_code in (200, 201):
            return "submitted"
        if response.status_code == 400 and ALREADY in response.text:
            return self.check_already(sub)
        raise SubmitError(f"{self.url} answered {response.status_code}: {response.text[:200]}")

    def check_already(self, sub: Submission) -> str:
        """Accept "already there" only if SQUAD processed that run (a 500 can leave one empty)."""
        orphan = self.unprocessed_run(sub.job_id)
        if orphan:
            raise SubmitError(
                f"SQUAD holds an unprocessed test run for job_id {sub.job_id} ({orphan}),"
                " maybe left by an earlier 500: delete it in SQUAD's admin, then `lkft push`"
            )
        return "already submitted"

    def unprocessed_run(self, job_id: str) -> str:
        """The URL of SQUAD's test run with this job_id if its data was never processed."""
        try:
            response = self.session.get(f"{self.url}/api/testruns/", params={"job_id": job_id},
                                        headers=self.headers(), timeout=60)
            runs = response.json().get("results", []) if response.status_code == 200 else []
        except (requests.RequestException, ValueError):
            return ""  # cannot tell: trust SQUAD's answer
        return next((str(r.get("url")) for r in runs if r.get("data_processed") is False), "")

    def submit_or_spool(self, record: RunRecord, console_log: str | Sequence[str] = "") -> str:
        """Submit a run; on final failure spool it and say where and what to run."""
        sub = submission_from(record, console_log)
        where = f"{sub.group}/{sub.project}/{sub.build}/{sub.environment}"
        try:
            if not self.headers():
                raise SubmitError(NO_TOKEN)
            outcome = self.submit(sub)
        except SubmitError as error:
            path = spool(sub, self.url)
            return (f"squad: {where} NOT submitted ({error}); spooled to {path}, "
                    "send it later with `lkft push`")
        return f"squad: {where} {outcome} to {self.url} (job_id {sub.job_id})"


def spool(sub: Submission, url: str, directory: Path | None = None) -> Path:
    """Write a submission and copies of its attachments under the spool, atomically."""
    root = directory or spool_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    attachments = {}
    for name, path in sub.attachments.items():
        if Path(path).exists():
            shutil.copyfile(path, tmp / name)
            attachments[name] = name
    data = {**asdict(sub), "attachments": attachments, "url": url}
    (tmp / SPOOL_FILE).write_text(json.dumps(data))
    final = root / (sub.job_id or tmp.name.lstrip(".-"))
    os.replace(tmp, final)
    return final


def load_spooled(path: Path) -> tuple[Submission, str]:
    """Read a spooled submission back; attachment paths become absolute."""
    data = json.loads((path / SPOOL_FILE).read_text())
    url = data.pop("url")
    data["attachments"] = {n: str(path / p) for n, p in data["attachments"].items()}
    return Submission(**data), url


def spooled(directory: Path | None = None) -> list[Path]:
    """The spooled submissions, oldest first."""
    root = directory or spool_dir()
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / SPOOL_FILE).is_file()]
    return sorted(found, key=lambda p: (p / SPOOL_FILE).stat().st_mtime)


# -- known issues ---------------------------------------------------------------------


def issue_notes(issue: KnownIssue) -> tuple[str, str | None]:
    """A known issue's SQUAD notes and URL (the first http(s) URL in its reason)."""
    link = re.search(r"https?://\S+", issue.reason)
    return issue.reason, link.group(0) if link else None


class KnownIssuePusher:
    """Creates or updates a project's known issues in SQUAD through its REST API.

    SQUAD ties a known issue to environments (none: it applies nowhere), so an issue for
    every environment is tied to all the project's environments and those of this run;
    a missing environment is created first. SQUAD matches `test_name` as a pattern where
    `*` is any text, like the store's fnmatch patterns.
    """

    def __init__(self, client: SquadClient, group: str, project: str) -> None:
        self.client = client
        self.api = f"{client.url}/api"
        self.group, self.project = group, project

    def get(self, path: str, **params: str) -> list[dict[str, object]]:
        """Every result of a SQUAD list (following `next`)."""
        found: list[dict[str, object]] = []
        url: str | None = f"{self.api}/{path}"
        query: dict[str, str] | None = {**params, "limit": "1000"}
        while url:
            response = self.client.session.get(url, params=query, headers=self.client.headers(),
                                               timeout=60)
            response.raise_for_status()
            page = response.json()
            found += page["results"]
            url, query = page.get("next"), None
        return found

    def send(self, method: str, path: str, data: Mapping[str, object]) -> dict[str, object]:
        """POST or PATCH JSON; raise SubmitError saying what SQUAD answered."""
        response = self.client.session.request(method, f"{self.api}/{path}", json=data,
                                               headers=self.client.headers(), timeout=60)
        if response.status_code == 403:
            raise SubmitError("the token may not change known issues or environments in SQUAD"
                              " (it needs a user with the core.add_knownissue,"
                              " change_knownissue and add_environment permissions)")
        if response.status_code not in (200, 201):
            raise SubmitError(f"{path} answered {response.status_code}: {response.text[:200]}")
        answer: dict[str, object] = response.json()
        return answer

    def environments(self, project_url: str, project_id: object,
                     wanted: set[str]) -> dict[str, str]:
        """slug -> URL of the project's environments, creating the wanted ones missing."""
        found = {str(e["slug"]): str(e["url"])
                 for e in self.get("environments/", project=str(project_id))}
        for slug in sorted(wanted - found.keys()):
            created = self.send("POST", "environments/", {"project": project_url, "slug": slug})
            found[slug] = str(created["url"])
        return found

    def push(self, issues: Sequence[KnownIssue], run_environments: Sequence[str]) -> int:
        """Create or update each issue; return how many SQUAD holds for this project."""
        projects = self.get("projects/", full_name=f"{self.group}/{self.project}")
        project = next((p for p in projects
                        if p.get("full_name") == f"{self.group}/{self.project}"), None)
        if project is None:
            raise SubmitError(f"SQUAD has no project {self.group}/{self.project}; create it"
                              f" (squad-admin get_token {self.group}/{self.project})")
        wanted = {e for i in issues for e in i.environments} | set(run_environments)
        envs = self.environments(str(project["url"]), project["id"], wanted)
        for issue in issues:
            notes, url = issue_notes(issue)
            data = {"title": issue.test, "test_name": issue.test, "notes": notes, "url": url,
                    "active": True, "intermittent": False,
                    "environments": [envs[e] for e in (issue.environments or sorted(envs))]}
            same = [k for k in self.get("knownissues/", test_name=issue.test)
                    if k.get("title") == issue.test]
            if same:
                self.send("PATCH", f"knownissues/{same[0]['id']}/", data)
            else:
                self.send("POST", "knownissues/", data)
        return len(issues)


def push_known_issues(client: SquadClient, group: str, project: str,
                      issues: Sequence[KnownIssue], environments: Sequence[str]) -> str:
    """Push known issues before the submits; a one-line outcome for the summary."""
    if not issues:
        return ""
    if not client.headers():
        return f"squad: known issues NOT pushed: {NO_TOKEN}"
    try:
        count = KnownIssuePusher(client, clean_name(group), clean_name(project)).push(
            issues, [clean_name(e) for e in environments])
    except (SubmitError, requests.RequestException, KeyError, ValueError) as error:
        return f"squad: known issues NOT pushed to {client.url}: {error}"
    return f"squad: {count} known issues pushed to {client.url} for {group}/{project}"
