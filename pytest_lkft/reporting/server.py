"""`lkft serve`: the embedded store over HTTP, SQUAD-compatible for SQUAD's clients.

- `POST /api/submit/<group>/<project>/<build>/<environment>` takes SQUAD's fields
  (`tests`, `metrics`, `metadata`, `log` as files or form fields, `attachment` files, the
  special metadata fields such as `job_id`) and SQUAD's `Authorization: Token` or
  `Auth-Token` header, so squad-client, LAVA notifications and tuxrun can push here.
  Names must match SQUAD's `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (refused, not truncated).
  The keyword of `Authorization: Token X` is taken in any case, as SQUAD (Django REST
  framework) takes it: squad-client sends `token X`.
- `GET /api/...` is SQUAD 1.98's REST read API (`api.py`), `POST /api/projects/` and
  `PATCH /api/projects/<id>/` its project create and update (squad-client's
  create-or-update-project).
- `GET /` and the pages under `/<group>/<project>/` are LKFT's dashboard (`pages.py`).

Lifecycle: `StoreServer(address, settings)`, `serve_forever()` in the caller's thread, each
request on its own thread with its own SQLite connection; submits are serialised by a lock.
"""

from __future__ import annotations

import email.parser
import email.policy
import hmac
import json
import re
import statistics
import sys
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

from pytest_lkft.errors import UserError
from pytest_lkft.parsers.model import Case, Metric, Result
from pytest_lkft.reporting import api, buildstatus, knownissues, pages
from pytest_lkft.reporting.knownissues import KnownIssue
from pytest_lkft.reporting.store import RunRecord, Store, join_logs

NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"
SUBMIT = re.compile(rf"^/api/submit/(~?{NAME})/({NAME})/({NAME})/({NAME})/?$")
PROJECT_PAGE = re.compile(rf"^/(~?{NAME})/({NAME})/?$")
BUILD_PAGE = re.compile(rf"^/(~?{NAME})/({NAME})/build/([^/]+)/?$")
LOG_PAGE = re.compile(rf"^/(~?{NAME})/({NAME})/build/([^/]+)/log/(\d+)/([^/]+)/?$")
TEST_PAGE = re.compile(rf"^/(~?{NAME})/({NAME})/test/?$")
PROJECT_API = re.compile(r"^/api/projects/(?:(\d+)/)?$")
SPECIAL_METADATA = ("build_url", "datetime", "job_id", "job_status", "job_url", "resubmit_url")
SQUAD_RESULTS = {"pass": Result.PASS, "fail": Result.FAIL}
MAX_BODY = 512 * 1024 * 1024


class SubmitRefused(Exception):
    """A submission SQUAD would answer with this HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Form:
    """A parsed multipart or urlencoded form: text fields and uploaded files."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """A field's text, from an uploaded file or a plain field."""
        if name in self.files:
            return self.files[name][0][1].decode("utf-8", errors="replace")
        return self.fields.get(name)


def parse_form(content_type: str, body: bytes) -> Form:
    """Parse a multipart/form-data or urlencoded body (as SQUAD clients send) into a Form."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        pairs = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return Form(fields={name: values[-1] for name, values in pairs.items()})
    if not content_type.startswith("multipart/form-data"):
        raise SubmitRefused(400, f"expected multipart/form-data, got {content_type or 'nothing'}")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        filename = part.get_filename()
        if filename is not None:
            form.files.setdefault(name, []).append((filename, payload))
        else:
            form.fields[name] = payload.decode("utf-8", errors="replace")
    return form


def load_json(text: str | None, what: str) -> dict[str, object]:
    """Decode a JSON object field; refuse anything else as SQUAD does (400)."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SubmitRefused(400, f"{what} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise SubmitRefused(400, f"{what} must be a JSON object")
    return data


def split_name(full: str) -> tuple[str, str]:
    """Split `suite/test` as SQUAD does: the suite is everything before the last '/'."""
    suite, _, name = full.rpartition("/")
    return suite or "/", name


def cases_of(tests: dict[str, object]) -> list[Case]:
    """SQUAD's tests object into Cases: only pass/fail are results, the rest is skip."""
    cases = []
    for full, value in tests.items():
        word, log = (value.get("result"), value.get("log")) if isinstance(value, dict) else (
            value, None)
        result = SQUAD_RESULTS.get(str(word).lower(), Result.SKIP)
        suite, name = split_name(full)
        cases.append(Case(suite, name, result, log=str(log).splitlines() if log else []))
    return cases


def metrics_of(metrics: dict[str, object]) -> dict[str, Metric]:
    """SQUAD's metrics object (number, list of numbers, or {value, unit}) into Metrics."""
    found = {}
    for full, value in metrics.items():
        unit = ""
        if isinstance(value, dict):
            unit, value = str(value.get("unit") or ""), value.get("value")
        try:
            number = statistics.fmean(value) if isinstance(value, list) else float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            raise SubmitRefused(400, f"metric {full!r} has no numeric value: {value!r}") from error
        suite, name = split_name(full)
        found[f"{suite}/{name}"] = Metric(number, unit)
    return found


def metadata_of(form: Form) -> dict[str, str]:
    """The metadata file, else SQUAD's special metadata fields sent as plain fields."""
    metadata = load_json(form.text("metadata"), "metadata")
    if not metadata:
        metadata = {k: form.fields[k] for k in SPECIAL_METADATA if k in form.fields}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}


def console_log(form: Form) -> str:
    """The run's log: the `log` field, then each attachment under a line naming it (the
    API lists them as the test run's attachments)."""
    files = [(name, data.decode("utf-8", errors="replace"))
             for name, data in form.files.get("attachment", [])]
    return (form.text("log") or "") + join_logs(files)


def record_of(path: tuple[str, ...], form: Form, issues: list[KnownIssue]) -> RunRecord:
    """Turn one SQUAD submit into a RunRecord, known issues applied."""
    group, project, build, environment = path
    cases = cases_of(load_json(form.text("tests"), "tests"))
    for case in cases:
        case.result, case.reason = knownissues.apply(issues, case.id, environment, case.result)
    metadata = metadata_of(form)
    job_id = metadata.get("job_id") or uuid.uuid4().hex
    if "/" in job_id:
        raise SubmitRefused(400, 'job_id cannot contain the "/" character')
    return RunRecord(group, project, build, environment, cases, metrics_of(
        load_json(form.text("metrics"), "metrics")), metadata, job_id,
        metadata.get("job_url", ""), console_log(form))


class StoreServer(ThreadingHTTPServer):
    """An HTTP server over one store file; the token guards submissions."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: Path, token: str,
                 issues: list[KnownIssue] | None = None) -> None:
        super().__init__(address, Handler)
        self.store_path = store
        self.token = token
        self.issues = issues or []
        self.write_lock = threading.Lock()
        Store(store).close()  # create the schema before the first request

    def submit(self, path: tuple[str, ...], form: Form) -> int:
        """Store one submission; a repeated job_id is refused as SQUAD does."""
        record = record_of(path, form, self.issues)
        with self.write_lock, Store(self.store_path) as store:
            if record.job_id and store.has_job(record.job_id):
                raise SubmitRefused(400, f"There is already a test run with job_id {record.job_id}")
            for issue in self.issues:  # the project's known issues, as the API lists them
                store.add_known_issue(record.group, record.project, issue.test,
                                      list(issue.environments), issue.reason)
            testrun = store.record(record)
            build = store.db.execute("SELECT build_id FROM testrun WHERE id = ?",
                                     (testrun,)).fetchone()[0]
            buildstatus.status(store, int(build))  # as SQUAD, on arrival: reads are cheap
            return testrun


class Handler(BaseHTTPRequestHandler):
    """Routes SQUAD's submit endpoint and the HTML pages."""

    server: StoreServer
    server_version = "lkft-serve"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base name
        """Log requests without headers (a token never reaches the log)."""
        print(f"{self.address_string()} {format % args}", file=sys.stderr, flush=True)

    def reply(self, status: int, body: str, content_type: str = "text/plain") -> None:
        """Send a complete response."""
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorised(self) -> bool:
        """Check SQUAD's `Authorization: Token X` (keyword in any case) or `Auth-Token: X`."""
        given = self.headers.get("Auth-Token") or ""
        keyword, _, value = (self.headers.get("Authorization") or "").strip().partition(" ")
        if keyword.lower() == "token":
            given = value.strip()
        return bool(self.server.token) and hmac.compare_digest(given.encode(),
                                                                self.server.token.encode())

    def body(self) -> bytes:
        """The request body; a missing, bad or oversized Content-Length is refused."""
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw or 0)
        except ValueError:
            length = -1
        if length < 0:
            raise SubmitRefused(400, f"bad Content-Length {raw!r}; send the body's size in bytes")
        if length > MAX_BODY:
            raise SubmitRefused(413, f"submission of {length} bytes is over {MAX_BODY}")
        return self.rfile.read(length)

    def reply_json(self, status: int, data: object) -> None:
        """Send a JSON answer (a plain string goes as text, as SQUAD's version does)."""
        if isinstance(data, str):
            self.reply(status, data)
            return
        self.reply(status, json.dumps(data), "application/json")

    def api_write(self, path: str) -> None:
        """SQUAD's project create (POST /api/projects/) and update (PATCH .../<id>/)."""
        match = PROJECT_API.match(path)
        if match is None:
            self.reply_json(405, {"detail": f'Method "{self.command}" not allowed.'})
            return
        if not self.authorised():
            self.reply_json(401, {"detail": "Authentication credentials were not provided."})
            return
        try:
            form = parse_qs(self.body().decode("utf-8", errors="replace"), keep_blank_values=True)
            request = api.Request(path[len("/api/"):], {}, self.base_url(), True, form)
            with self.server.write_lock, Store(self.server.store_path) as store:
                ident = int(match[1]) if match[1] else None
                project = api.save_project(store, request, ident)
        except SubmitRefused as refused:
            self.reply_json(refused.status, {"detail": str(refused)})
            return
        except api.ApiError as error:
            self.reply_json(error.status, {"detail": str(error)})
            return
        self.reply_json(201 if match[1] is None else 200, project)

    def do_PATCH(self) -> None:  # noqa: N802 - http.server's name
        """Handle `PATCH /api/projects/<id>/` (squad-client's create-or-update-project)."""
        self.api_write(self.path.split("?")[0])

    def base_url(self) -> str:
        """This server's URL as the client addressed it (SQUAD's hyperlinks use it)."""
        address = self.server.server_address
        host = self.headers.get("Host") or f"{address[0]!s}:{address[1]}"
        return f"http://{host}"

    def do_api_get(self, path: str, query: str) -> None:
        """Answer SQUAD's REST read API."""
        request = api.Request(path[len("/api/"):], api.parse_query(query), self.base_url(),
                              self.authorised())
        try:
            with Store(self.server.store_path) as store:
                data = api.answer(store, request)
        except api.ApiError as error:
            self.reply_json(error.status, {"detail": str(error)})
            return
        self.reply_json(200, data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        """Handle `POST /api/submit/...`."""
        match = SUBMIT.match(self.path.split("?")[0])
        if not match and PROJECT_API.match(self.path.split("?")[0]):
            self.api_write(self.path.split("?")[0])
            return
        if not match:
            self.reply(404, f"no such endpoint {self.path}; submit to /api/submit/G/P/BUILD/ENV")
            return
        try:
            if not self.authorised():
                raise SubmitRefused(401, "missing or wrong token: send 'Authorization: Token X'")
            form = parse_form(self.headers.get("Content-Type", ""), self.body())
            testrun = self.server.submit(match.groups(), form)
        except SubmitRefused as refused:
            self.reply(refused.status, str(refused))
            return
        self.reply(201, str(testrun))

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        """Serve SQUAD's REST API, the pages and the console logs."""
        path, _, query = self.path.partition("?")
        path = unquote(path)
        if path == "/api" or path.startswith("/api/"):
            self.do_api_get(path if path != "/api" else "/api/", query)
            return
        try:
            with Store(self.server.store_path) as store:
                body, kind = self.page(store, path, api.parse_query(query))
        except UserError as error:
            self.reply(404, str(error))
            return
        self.reply(200, body, kind)

    def page(self, store: Store, path: str, query: dict[str, str]) -> tuple[str, str]:
        """A page (HTML) or a console log (text) for a GET path; UserError when none."""
        seen = self.authorised()
        if path == "/":
            return pages.index_page(store, seen), "text/html"
        if m := PROJECT_PAGE.match(path):
            return pages.project_page(store, m[1], m[2], seen), "text/html"
        if m := BUILD_PAGE.match(path):
            return pages.build_page(store, m[1], m[2], m[3], seen), "text/html"
        if m := LOG_PAGE.match(path):
            return pages.log_text(store, m[1], m[2], m[3], int(m[4]), m[5], seen), "text/plain"
        if (m := TEST_PAGE.match(path)) and query.get("name"):
            return pages.test_page(store, m[1], m[2], query["name"], seen), "text/html"
        raise UserError(f"no page {path}; start at /")

