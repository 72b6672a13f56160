"""LAVA's REST API v0.2, as much of it as a suite run needs: submit, follow, read, cancel.

    POST /api/v0.2/jobs/                {"definition": YAML} -> {"job_ids": [N]}
    GET  /api/v0.2/jobs/N/              state (Submitted, Scheduling, Scheduled, Running,
                                        Canceling, Finished), health (Unknown, Complete,
                                        Incomplete, Canceled), times, device
    GET  /api/v0.2/jobs/N/logs/?start=L the job log from line L (YAML, one entry a line);
                                        404 while there is none
    GET  /api/v0.2/jobs/N/tests/?limit=M  test cases, M a page (default 50; follow `next`);
                                        `metadata` is a YAML string
    GET  /api/v0.2/jobs/N/cancel/       cancel (POST answers 405 in 2023.01)

The token goes in an `Authorization: Token ...` header and nowhere else: not in messages,
not in `repr()`. A lab that cannot be reached, or answers 5xx, is retried with a growing
pause for `retry_for` seconds, then `LabUnreachable`; a refused token is a `UserError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from pytest_lkft.errors import InfraError, UserError

DEFAULT_RETRY_FOR = 60.0  # seconds a lab may be down or failing before we give up
TIMEOUT = 30.0  # seconds per HTTP request
FIRST_PAUSE = 0.5
MAX_PAUSE = 8.0
TOKEN_ENV = "LKFT_LAVA_TOKEN"
TESTS_PAGE = 500  # test cases per request (LAVA's default page: 50)


class LavaError(InfraError):
    """LAVA refused or failed a request."""


class LabUnreachable(LavaError):
    """The lab could not be reached, or kept answering 5xx, for the whole retry time."""


class TokenRefused(UserError):
    """LAVA refused the token (401/403)."""


@dataclass
class LavaClient:
    """A LAVA server's REST API with a token; see the module docstring."""

    url: str
    token: str = field(repr=False)
    retry_for: float = DEFAULT_RETRY_FOR
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/") + "/"
        if self.token:
            self.session.headers["Authorization"] = f"Token {self.token}"

    def job_url(self, job_id: int) -> str:
        """The job's page in LAVA's web interface (for messages and links)."""
        return f"{self.url}scheduler/job/{job_id}"

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One API call, retried while the lab is down or answers 5xx."""
        deadline = time.monotonic() + self.retry_for
        pause, why = FIRST_PAUSE, ""
        while True:
            try:
                response = self.session.request(method, f"{self.url}api/v0.2/{path}",
                                                timeout=TIMEOUT, **kwargs)
                if response.status_code < 500:
                    return self._checked(response, path)
                why = f"HTTP {response.status_code} {response.reason}"
            except requests.ConnectionError as error:
                why = _reason(error)
            except requests.Timeout:
                why = f"no answer within {TIMEOUT:g} s"
            if time.monotonic() + pause > deadline:
                raise LabUnreachable(f"LAVA at {self.url} cannot be reached ({why}); "
                                     f"retried for {self.retry_for:g} s")
            self.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)

    def _checked(self, response: requests.Response, path: str) -> requests.Response:
        """The response, or a one-line error for 401/403 (the token) and other 4xx."""
        if response.status_code in (401, 403):
            detail = _detail(response)
            raise TokenRefused(f"LAVA at {self.url} refused the token from {TOKEN_ENV} "
                               f"({response.status_code} {detail}); check it")
        if response.status_code >= 400 and not (response.status_code == 404
                                                and "/logs/" in path):
            raise LavaError(f"LAVA at {self.url} answered {response.status_code} to "
                            f"{path.split('?')[0]}: {_detail(response)}")
        return response

    def check_token(self) -> str:
        """The user the token belongs to; TokenRefused when LAVA refuses it."""
        found = self._request("GET", "system/whoami/").json()
        user = str(found.get("user") or "")
        if not user:
            raise TokenRefused(f"LAVA at {self.url} does not know the token from {TOKEN_ENV} "
                               "(it answers as an anonymous user); check it")
        return user

    def submit(self, definition: str) -> int:
        """Submit a job definition (YAML); its id."""
        answer = self._request("POST", "jobs/", json={"definition": definition}).json()
        ids = answer.get("job_ids") or []
        if not ids:
            raise LavaError(f"LAVA at {self.url} accepted no job: {answer}")
        return int(ids[0])

    def job(self, job_id: int) -> dict[str, Any]:
        """The job's record: state, health, times, actual_device, failure_comment."""
        return dict(self._request("GET", f"jobs/{job_id}/").json())

    def logs(self, job_id: int, start: int = 0) -> str:
        """The job log from line `start` on ("" when there is none yet)."""
        response = self._request("GET", f"jobs/{job_id}/logs/?start={start}")
        return "" if response.status_code == 404 else response.text

    def tests(self, job_id: int) -> list[dict[str, Any]]:
        """Every test case of the job, all pages."""
        found: list[dict[str, Any]] = []
        path: str | None = f"jobs/{job_id}/tests/?limit={TESTS_PAGE}"
        while path is not None:
            page = self._request("GET", path).json()
            found += page.get("results", [])
            following = page.get("next")
            path = following.split("/api/v0.2/", 1)[1] if following else None
        return found

    def cancel(self, job_id: int) -> None:
        """Ask LAVA to cancel the job (it shows Canceling, then Finished/Canceled)."""
        self._request("GET", f"jobs/{job_id}/cancel/")


def _reason(error: requests.ConnectionError) -> str:
    """`Connection refused` from requests' nested exception text."""
    text = str(error)
    for known in ("Connection refused", "Name or service not known", "No route to host",
                  "Connection reset by peer", "Remote end closed connection"):
        if known in text:
            return known
    return type(error).__name__


def _detail(response: requests.Response) -> str:
    """LAVA's `detail`/`message` for an error answer, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason
    if isinstance(data, dict):
        return str(data.get("detail") or data.get("message") or data)[:300]
    return str(data)[:300]
