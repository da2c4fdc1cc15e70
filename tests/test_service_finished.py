"""A real server over a database holding a finished study: property-based tests of its OpenAPI
document (schemathesis: whatever request the document allows, and the many it does not, is
answered below 500, with a full token, a read-only one and none), and optuna-dashboard behind
its login, in headless Chromium."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import matplotlib.image
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from schemathesis.config import SchemathesisConfig

from groupwise.service._dashboard import COOKIE
from test_dashboard import CHROMIUM, chromium
from test_service import FULL, READ, Server, launched_from_cli

TOKENS = {"full": FULL, "read": READ, "none": None}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("fuzz")
    storage = f"sqlite:///{work}/s.db"
    launched_from_cli(work, storage, "fuzzed", 3)
    running = Server(storage, work, "--no-jobs").start()  # accepted studies are only recorded
    yield running
    running.kill(signal.SIGINT)


# The document's promises, checked on every answer: no 5xx; every status answered is one the
# document lists for that operation, with the body and content type it says; a request the
# document calls invalid is refused, and one it calls valid is accepted (401/403/404/409 are
# answers too). A study document that passes the schema can still fail what no schema says
# (a metric its task reports; stale_after_s longer than heartbeat_s): POST /studies may
# answer those 422, as its document says.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.positive_data_acceptance,
]
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-name": "POST /studies",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "403", "409", "422"]
                    }
                },
            }
        ]
    }
)


def test_no_request_makes_the_server_fail(server):
    """Every operation of the document, with requests it allows (positive) and requests it
    does not (negative), each sent with a full token, a read-only one and none; each answer
    checked against what the document promises (CHECKS)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{o.method.upper()} {o.path}" for o in operations} >= {
        "POST /studies",
        "GET /studies/{name}/trials",
        "POST /studies/{name}/stop",
    }
    sent: list[str] = []
    for operation in operations:
        _fuzz(server, operation.as_strategy(generation_mode=GenerationMode.POSITIVE), sent)
        # An operation with no parameters and no body has no invalid request to make.
        with contextlib.suppress(Unsatisfiable):
            _fuzz(server, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), sent)
    assert len(sent) > 3 * len(operations) * 10  # the cases really ran


def _fuzz(server: Server, cases: Any, sent: list[str]) -> None:
    @given(cases)
    @settings(
        max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: schemathesis.Case) -> None:
        for token in TOKENS.values():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = case.call(base_url=server.url, headers=headers)
            sent.append(f"{case.method} {case.path}")
            case.validate_response(response, checks=CHECKS, headers=headers)
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}  # one line, as the CLI says it
                assert "\n" not in response.json()["error"]

    check()


def test_the_dashboard_is_behind_the_login(server):
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        page = browser.get("/dashboard/studies/1")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=/dashboard/studies/1"
        assert browser.get("/api/studies").status_code == 401
        refused = browser.post("/login", data={"token": "x" * 30, "next": "/dashboard"})
        assert refused.status_code == 401 and COOKIE not in refused.cookies
        for target in ("https://elsewhere.example/", "//elsewhere.example/x"):  # no open redirect
            sent = browser.post("/login", data={"token": READ, "next": target})
            assert sent.headers["location"] == "/dashboard"
        assert "httponly" in sent.headers["set-cookie"].lower()
        studies = browser.get("/api/studies").json()["study_summaries"]
        assert [s["study_name"] for s in studies] == ["fuzzed"]
        deleted = browser.delete(f"/api/studies/{studies[0]['study_id']}")
        assert deleted.status_code == 403  # a read-only session only looks
        browser.post("/logout")
        assert browser.get("/api/studies").status_code == 401


def test_the_dashboards_files_serve_a_client_that_sends_no_accept_encoding(server):
    """optuna-dashboard reads Accept-Encoding for its static files; a client that sends none
    (http.client, curl) got 500. The mount completes the request for it."""
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        browser.post("/login", data={"token": READ, "next": "/dashboard"})
        cookie = browser.cookies[COOKIE]
        zipped = browser.get("/static/bundle.js")  # httpx asks for gzip
    assert zipped.status_code == 200
    for path in ("/static/bundle.js", "/favicon.ico"):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.putheader("Cookie", f"{COOKIE}={cookie}")
        connection.endheaders()
        answer = connection.getresponse()
        body = answer.read()
        connection.close()
        assert answer.status == 200, (path, body[:300])
        assert answer.getheader("content-encoding") is None  # plain, as asked for
    assert body and len(zipped.content) > 0


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_dashboard_in_a_browser_refuses_then_shows_the_study_after_login(server, tmp_path):
    shown = chromium("--dump-dom", f"{server.url}/dashboard")
    assert shown.returncode == 0 and "Log in with an API token" in shown.stdout
    assert "fuzzed" not in shown.stdout
    with httpx.Client(base_url=server.url) as client:
        client.post("/login", data={"token": FULL, "next": "/dashboard"})  # the client keeps it
        (found,) = client.get("/api/studies").json()["study_summaries"]
    target = f"/dashboard/studies/{found['study_id']}"
    # A page that logs in as a person would (the login form, posted), then follows the
    # redirect to the study: the browser holds the session cookie from then on.
    login = tmp_path / "login.html"
    login.write_text(
        f'<form id="f" method="post" action="{server.url}/login">'
        f'<input name="token" value="{FULL}"><input name="next" value="{target}"></form>'
        '<script>document.getElementById("f").submit()</script>'
    )
    dom = chromium("--dump-dom", login.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "fuzzed" in dom.stdout and "Log in with an API token" not in dom.stdout
    shot = tmp_path / "service-dashboard.png"
    done = chromium("--window-size=1400,1000", f"--screenshot={shot}", login.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    assert matplotlib.image.imread(shot)[..., :3].std() > 0.05  # a rendered page
    keep = os.environ.get("GROUPWISE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
