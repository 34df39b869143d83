"""The dashboard is safe by default: this machine only, a warning for any other address, and a
read-only mode that refuses every change while the study stays readable."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from dnntune.dashboard import exposed_warning, refuse_changes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _study(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="kept", storage=url)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    return url


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dnntune", "dashboard", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _request(url: str, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"{}" if method != "GET" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_read_only_dashboard_on_the_network_warns_serves_reads_and_refuses_changes(
    tmp_path: Path,
) -> None:
    url, port = _study(tmp_path), _free_port()
    proc = _serve("--storage", url, "--port", str(port), "--host", "0.0.0.0", "--read-only")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        warning = proc.stderr.readline()
        assert warning.startswith("warning: the dashboard on 0.0.0.0 has no authentication")
        assert "read-only" in warning
        ready = proc.stdout.readline()
        assert f"(read-only) on {url}: http://0.0.0.0:{port}/" in ready
        base = f"http://127.0.0.1:{port}/api/studies"
        status, body = _request(base)
        assert status == 200
        (study,) = json.loads(body)["study_summaries"]
        assert study["study_name"] == "kept"
        sid = study["study_id"]
        for method, path in [
            ("DELETE", f"/{sid}"),
            ("POST", f"/{sid}/rename"),
            ("PUT", f"/{sid}/note"),
            ("POST", ""),
        ]:
            status, body = _request(base + path, method)
            assert status == 403 and b"read-only" in body, (method, path)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["kept"]
    assert len(optuna.load_study(study_name="kept", storage=url).trials) == 2


def test_the_port_taken_is_one_line(tmp_path: Path) -> None:
    url = _study(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _serve("--storage", url, "--port", str(port))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.strip().startswith(
        f"error: cannot listen on 127.0.0.1:{port}"
    )
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("host", "read_only", "warns"),
    [
        ("127.0.0.1", False, False),
        ("localhost", False, False),
        ("::1", False, False),
        ("0.0.0.0", False, True),
        ("192.168.1.5", True, True),
        ("myhost.example", False, True),
    ],
)
def test_which_addresses_warn(host: str, read_only: bool, warns: bool) -> None:
    warning = exposed_warning(host, read_only)
    assert (warning is not None) == warns
    if warning and read_only:
        assert "read-only" in warning and "edit" not in warning


def test_refuse_changes_passes_reads_through() -> None:
    seen: list[str] = []

    def app(environ, start_response):
        seen.append(environ["REQUEST_METHOD"])
        start_response("200 OK", [])
        return [b"ok"]

    guarded = refuse_changes(app)
    statuses: list[str] = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        body = guarded({"REQUEST_METHOD": method}, lambda s, h: statuses.append(s))
        assert (b"".join(body) == b"ok") == (method in ("GET", "HEAD"))
    assert seen == ["GET", "HEAD"]
    assert statuses[2:] == ["403 Forbidden"] * 4
