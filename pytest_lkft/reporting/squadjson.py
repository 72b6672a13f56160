"""SQUAD 1.98's JSON objects for the store's rows, as its REST API serialises them.

Each serialiser takes the request (for hyperlinks: SQUAD links objects by URL), a row and
the request's Context (suite and environment names, which projects the caller may see).
Shapes and values were read from a real SQUAD 1.98 (see tests/test_squad_clients.py).
"""

from __future__ import annotations

import datetime
import json
import re
import sqlite3
from dataclasses import dataclass, field
from urllib.parse import quote

from pytest_lkft.reporting import buildstatus
from pytest_lkft.reporting.store import Store, split_logs

Row = sqlite3.Row
Json = dict[str, object]


@dataclass
class Request:
    """One API request: the path after `/api/`, its query, the server's base URL."""

    path: str
    query: dict[str, str]
    base: str
    authorised: bool
    data: dict[str, list[str]] = field(default_factory=dict)
    scope: dict[str, str] = field(default_factory=dict)  # a nested list's own filter

    def within(self, **scope: str) -> Request:
        """The same request narrowed to a parent object (`/builds/<id>/tests/`)."""
        return Request(self.path, self.query, self.base, self.authorised, self.data, scope)

    def url(self, kind: str, ident: object) -> str | None:
        """SQUAD's hyperlink to an object, or None for a missing one."""
        return None if ident is None else f"{self.base}/api/{kind}/{ident}/"


def when(epoch: float | None) -> str | None:
    """SQUAD's datetime format."""
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def squad_result(word: str) -> bool | None:
    """SQUAD's boolean result for a stored result word."""
    return True if word == "pass" else None if word == "skip" else False


def squad_status(word: str) -> str:
    """SQUAD's status word: errors are fails, as submitted."""
    return "fail" if word == "error" else word


class Context:
    """What serialisers look up per request: suite and environment slugs, privacy."""

    def __init__(self, store: Store, request: Request) -> None:
        self.db = store.db
        self.request = request
        self._suites: dict[int, str] | None = None
        self._envs: dict[int, str] | None = None
        public = "" if request.authorised else " WHERE is_public = 1"
        self.visible = [int(r[0]) for r in self.db.execute(f"SELECT id FROM project{public}")]

    def suites(self) -> dict[int, str]:
        """Suite id -> slug (every project: a request may span several)."""
        if self._suites is None:
            rows = self.db.execute("SELECT id, slug FROM suite")
            self._suites = {int(i): str(s) for i, s in rows}
        return self._suites

    def envs(self) -> dict[int, str]:
        """Environment id -> slug."""
        if self._envs is None:
            self._envs = {int(i): str(s) for i, s in
                          self.db.execute("SELECT id, slug FROM environment")}
        return self._envs

    def restricted(self) -> list[int] | None:
        """Project ids to restrict lists to; None when every project is visible."""
        total = int(self.db.execute("SELECT count(*) FROM project").fetchone()[0])
        return None if len(self.visible) == total else self.visible


# -- serialisers ----------------------------------------------------------------------


def group_json(r: Request, row: Row, ctx: Context) -> Json:
    """SQUAD\'s group object for a row."""
    return {"url": r.url("groups", row["id"]), "id": row["id"], "slug": row["slug"],
            "name": row["slug"], "description": None, "settings": None}


def project_json(r: Request, row: Row, ctx: Context) -> Json:
    """SQUAD\'s project object for a row."""
    settings = json.loads(row["settings"] or "{}")
    answer: Json = {
        "url": r.url("projects", row["id"]), "id": row["id"],
        "full_name": f"{row['group_slug']}/{row['slug']}",
        "enabled_plugins_list": settings.get("enabled_plugins_list"), "slug": row["slug"],
        "name": row["name"] or row["slug"], "is_public": bool(row["is_public"]),
        "html_mail": settings.get("html_mail", True),
        "moderate_notifications": settings.get("moderate_notifications", False),
        "description": row["description"] or None,
        "important_metadata_keys": settings.get("important_metadata_keys"),
        "datetime": when(row["updated"]),
        "wait_before_notification": settings.get("wait_before_notification"),
        "notification_timeout": settings.get("notification_timeout"),
        "data_retention_days": settings.get("data_retention_days", 0),
        "is_archived": settings.get("is_archived", False),
        "force_finishing_builds_on_timeout": settings.get("force_finishing_builds_on_timeout",
                                                          False),
        "build_confidence_count": settings.get("build_confidence_count", 20),
        "build_confidence_threshold": settings.get("build_confidence_threshold", 90),
        "group": r.url("groups", row["group_id"]), "custom_email_template": None,
    }
    return answer


def build_json(r: Request, row: Row, ctx: Context) -> Json:
    """SQUAD\'s build object for a row."""
    ident = row["id"]
    url = r.url("builds", ident)
    return {"url": url, "id": ident, "testruns": f"{url}testruns/", "testjobs": f"{url}testjobs/",
            "status": f"{url}status/", "metadata": f"{url}metadata/",
            "finished": bool(row["runs"]), "version": row["version"],
            "created_at": when(row["created_at"]), "datetime": when(row["created_at"]),
            "patch_id": None, "patch_url": None, "patch_notified": True, "keep_data": False,
            "is_release": False, "release_label": None,
            "project": r.url("projects", row["project_id"]), "patch_source": None,
            "patch_baseline": None}


def environment_json(r: Request, row: Row, ctx: Context) -> Json:
    """SQUAD\'s environment object for a row."""
    return {"url": r.url("environments", row["id"]), "id": row["id"], "slug": row["slug"],
            "name": None, "expected_test_runs": 0, "description": None,
            "project": r.url("projects", row["project_id"])}


def suite_json(r: Request, row: Row, ctx: Context) -> Json:
    """SQUAD\'s suite object for a row."""
    return {"url": r.url("suites", row["id"]), "id": row["id"], "slug": row["slug"],
            "name": None, "project": r.url("projects", row["project_id"])}


def testrun_json(r: Request, row: Row, ctx: Context) -> Json:
    """SQUAD\'s testrun object for a row."""
    url = r.url("testruns", row["id"])
    return {"url": url, "id": row["id"],
            "tests_file": f"{url}tests_file/" if row["tests"] else None,
            "metrics_file": f"{url}metrics_file/" if row["metrics"] else None,
            "metadata_file": f"{url}metadata_file/", "log_file": f"{url}log_file/",
            "tests": f"{url}tests/" if row["tests"] else None,
            "metrics": f"{url}metrics/" if row["metrics"] else None,
            "attachments": attachments_json(r, row), "created_at": when(row["created_at"]),
            "completed": True,
            "datetime": when(row["created_at"]), "build_url": None, "job_id": row["job_id"],
            "job_status": None, "job_url": row["job_url"] or None, "resubmit_url": None,
            "data_processed": True, "status_recorded": True,
            "build": r.url("builds", row["build_id"]),
            "environment": r.url("environments", row["environment_id"])}


def attachment_names(log: str) -> dict[str, str]:
    """A test run's attachments, file name -> text, named as the plugin sends them to SQUAD:
    a name with a dot as it came, else `console.log` alone or `<suite>-console.log`."""
    parts = {name: text for name, text in split_logs(log).items() if name}
    return {name if "." in name else "console.log" if len(parts) == 1 else
            f"{name}-console.log": text for name, text in parts.items()}


def attachments_json(r: Request, row: Row) -> list[Json]:
    """SQUAD's attachment objects of a test run."""
    url = r.url("testruns", row["id"])
    return [{"download_url": f"{url}attachments/?filename={quote(name, safe='')}",
             "filename": name, "mimetype": "application/octet-stream",
             "length": len(text.encode())}
            for name, text in attachment_names(str(row["log"] or "")).items()]


def test_json(r: Request, row: Row, ctx: Context) -> Json:
    """SQUAD\'s test object for a row."""
    suite, word = ctx.suites().get(row["suite_id"], ""), row["result"]
    # SQUAD 1.98 lists no known_issues here even for an xfail (has_known_issues true)
    return {"url": r.url("tests", row["id"]), "id": row["id"], "name": f"{suite}/{row['name']}",
            "short_name": row["name"], "status": squad_status(word),
            "result": squad_result(word), "log": row["log"] or None,
            "has_known_issues": word == "xfail", "build": r.url("builds", row["build_id"]),
            "environment": r.url("environments", row["environment_id"]),
            "test_run": r.url("testruns", row["testrun_id"]),
            "suite": r.url("suites", row["suite_id"]), "metadata": None, "known_issues": []}


def metric_json(r: Request, row: Row, ctx: Context) -> Json:
    """SQUAD\'s metric object for a row."""
    suite = ctx.suites().get(row["suite_id"], "")
    return {"url": r.url("metrics", row["id"]), "id": row["id"], "name": f"{suite}/{row['name']}",
            "short_name": row["name"], "measurement_list": [row["value"]], "result": row["value"],
            "unit": row["unit"] or None, "is_outlier": False,
            "build": r.url("builds", row["build_id"]),
            "environment": r.url("environments", row["environment_id"]),
            "test_run": r.url("testruns", row["testrun_id"]),
            "suite": r.url("suites", row["suite_id"]), "metadata": None}


URL_IN_TEXT = re.compile(r"https?://\S+")


def knownissue_json(r: Request, row: Row, ctx: Context) -> Json:
    """SQUAD\'s knownissue object for a row."""
    envs = json.loads(row["environments"]) or [
        s for i, s in ctx.envs().items() if row["project_id"] in project_of_env(ctx, i)]
    ids = {s: i for i, s in ctx.envs().items() if row["project_id"] in project_of_env(ctx, i)}
    link = URL_IN_TEXT.search(row["reason"] or "")
    return {"url": link.group(0) if link else None, "id": row["id"], "title": row["test_name"],
            "test_name": row["test_name"], "notes": row["reason"] or None, "active": True,
            "intermittent": False,
            "environments": [r.url("environments", ids[e]) for e in envs if e in ids]}


def project_of_env(ctx: Context, env_id: int) -> tuple[int, ...]:
    """The project id of an environment (as a tuple, for `in`)."""
    row = ctx.db.execute("SELECT project_id FROM environment WHERE id = ?", (env_id,)).fetchone()
    return (int(row[0]),) if row else ()




def status_json(request: Request, found: buildstatus.Status) -> Json:
    """SQUAD's build status object."""
    total = found.tests_total
    share = (lambda n: n / total * 100) if total else (lambda n: 0)
    details = {"testruns": found.test_runs, "tests_total": total, "tests_pass": found.tests_pass,
               "tests_fail": found.tests_fail, "tests_xfail": found.tests_xfail,
               "tests_skip": found.tests_skip}
    return {
        "last_updated": when(found.last_updated), "finished": found.test_runs > 0,
        "notified": True, "notified_on_timeout": None, "approved": False,
        "tests_pass": found.tests_pass, "tests_fail": found.tests_fail,
        "tests_skip": found.tests_skip, "tests_xfail": found.tests_xfail, "tests_total": total,
        "pass_percentage": share(found.tests_pass),
        "fail_percentage": share(found.tests_fail + found.tests_xfail),
        "skip_percentage": share(found.tests_skip), "test_runs_total": found.test_runs,
        "test_runs_completed": found.test_runs, "test_runs_incomplete": 0,
        "has_metrics": found.has_metrics, "has_tests": total > 0,
        "metrics_summary": found.metrics_summary, "build": request.url("builds", found.build_id),
        "baseline": request.url("builds", found.baseline_id),
        "created_at": when(found.created_at),
        "regressions": json.dumps(found.regressions) if found.regressions else None,
        "fixes": json.dumps(found.fixes) if found.fixes else None,
        "metric_regressions": None, "metric_fixes": None,
        # SQUAD keys these by environment name, which its submit API leaves null
        "details": {"null": details} if found.test_runs else {},
    }
