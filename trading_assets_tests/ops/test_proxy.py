"""The documented front, deploy/proxy/nginx.conf, run by a real nginx: cross-site requests and DNS rebinding
are refused before they reach the webserver; the browser is told HTTPS only and no framing.

The test runs the repository's configuration as written; only what is site-specific changes (ports,
certificate and password files, logging) and the webservers are a recording stand-in.
"""

import json
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import requests

from trading_assets_tests.servers import LoopbackServer, QuietHandler, free_ports

CONF = Path(__file__).resolve().parents[2] / "deploy" / "proxy" / "nginx.conf"
HOST = "dagster.internal"


class Upstream(LoopbackServer):
    """Stands in for a webserver: records what reaches it, answers 200."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        upstream = self

        class Handler(QuietHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                upstream.seen.append((self.command, self.path))
                body = json.dumps({"data": {"ok": True}}).encode()
                self.start_json(200, len(body))
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815

        self._serve(Handler)
        self.port = self.server.server_address[1]


@pytest.fixture
def proxy(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("Debian's nginx is needed (installed by .ci/run)")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={HOST}"]
        + ["-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt")],
        check=True,
        capture_output=True,
    )
    (tmp_path / "operators.htpasswd").write_text("alice:{PLAIN}alice-secret\n")
    (tmp_path / "viewers.htpasswd").write_text("bob:{PLAIN}bob-secret\n")
    upstream = Upstream()
    operators, viewers = free_ports(2)
    conf = CONF.read_text()
    for old, new in {
        "listen 443 ssl": f"listen 127.0.0.1:{operators} ssl",
        "listen 8443 ssl": f"listen 127.0.0.1:{viewers} ssl",
        "/etc/nginx/tls/dagster.crt": str(tmp_path / "tls.crt"),
        "/etc/nginx/tls/dagster.key": str(tmp_path / "tls.key"),
        "/etc/nginx/dagster-operators.htpasswd": str(tmp_path / "operators.htpasswd"),
        "/etc/nginx/dagster-viewers.htpasswd": str(tmp_path / "viewers.htpasswd"),
        "http://127.0.0.1:3000": f"http://127.0.0.1:{upstream.port}",
        "http://127.0.0.1:3001": f"http://127.0.0.1:{upstream.port}",
        "http {": f"http {{\n    access_log off;\n    client_body_temp_path {tmp_path}/body;\n"
        f"    proxy_temp_path {tmp_path}/proxy;",
    }.items():
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp_path / "nginx.conf").write_text(conf)
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g",
         f"daemon off; user root; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"https://127.0.0.1:{operators}/", verify=False, timeout=1)
            break
        except requests.ConnectionError:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.1)
    yield {"operators": operators, "viewers": viewers, "upstream": upstream}
    process.terminate()
    process.wait(timeout=10)
    upstream.stop()


def _call(port, method, path="/graphql", host=HOST, auth=("alice", "alice-secret"), **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a self-signed certificate
        return requests.request(
            method, f"https://127.0.0.1:{port}{path}", headers={"Host": host, **kwargs.pop("headers", {})},
            auth=auth, verify=False, timeout=10, **kwargs,
        )  # fmt: skip


MUTATION = 'mutation { launchRun(executionParams: {selector: {jobName: "full_pipeline_job"}}) { __typename } }'


def test_cross_site_requests_are_refused_before_the_webserver(proxy):
    port, upstream = proxy["operators"], proxy["upstream"]
    refused = {
        "mutation over GET": _call(port, "GET", params={"query": MUTATION}).status_code,
        "text/plain POST": _call(port, "POST", data=json.dumps({"query": MUTATION}),
                                 headers={"Content-Type": "text/plain"}).status_code,
        "form POST": _call(port, "POST", data={"query": MUTATION}).status_code,
        "foreign Origin": _call(port, "POST", json={"query": MUTATION},
                                headers={"Origin": "https://evil.example"}).status_code,
        "foreign Host (DNS rebinding)": _call(port, "POST", host="evil.example", json={"query": MUTATION}).status_code,
        "no password": _call(port, "POST", json={"query": MUTATION}, auth=None).status_code,
    }  # fmt: skip
    assert refused == {
        "mutation over GET": 405,
        "text/plain POST": 415,
        "form POST": 415,
        "foreign Origin": 403,
        "foreign Host (DNS rebinding)": 421,
        "no password": 401,
    }
    assert upstream.seen == []  # none of them reached the webserver
    # what the UI sends passes: a JSON POST from its own origin, or from no browser (the CLI)
    same_origin = _call(port, "POST", json={"query": "{ version }"}, headers={"Origin": f"https://{HOST}"})
    cli = _call(port, "POST", json={"query": "{ version }"})
    assert (same_origin.status_code, cli.status_code) == (200, 200)
    assert upstream.seen == [("POST", "/graphql"), ("POST", "/graphql")]


@pytest.mark.parametrize("audience", ["operators", "viewers"])
def test_pages_are_https_only_and_never_framed(proxy, audience):
    auth = ("alice", "alice-secret") if audience == "operators" else ("bob", "bob-secret")
    page = _call(proxy[audience], "GET", "/", auth=auth)
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
