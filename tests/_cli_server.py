"""Run the real CLI in forked processes, so that the tests do not pay its imports every time.

Started once per test session by ``conftest.py``: ``python _cli_server.py SOCKET``. It imports
what a ``dnntune`` command loads (PyTorch, Optuna, scikit-learn, the report's plotting), says
``ready`` on stdout, then answers one request at a time on the Unix socket: a JSON line with
the command's arguments, working folder, environment and timeout. Each command runs in a
child forked from this process, in its own process group, with stdin from ``/dev/null`` and
stdout and stderr to files, through the CLI's entry point ``dnntune.cli.main`` with
``sys.argv`` set; the reply is its exit code and output. A command that runs past its timeout
is killed with its process group and answered ``timeout``. This process itself never runs
PyTorch, so forking stays safe.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
import warnings
from typing import Any

import optuna  # noqa: F401  (imported once here rather than in every command)
import sklearn.ensemble  # noqa: F401  (Optuna's importance evaluator)
import torch._dynamo  # noqa: F401  (a torch optimizer's first construction imports it)

import dnntune.artifacts
import dnntune.cli
import dnntune.compare
import dnntune.parallel
import dnntune.report
import dnntune.sklearn


def _child(request: dict[str, Any], out: int, err: int) -> None:
    """Run one command; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        if os.environ.get("PYTHONWARNINGS") == "ignore":
            warnings.simplefilter("ignore")
        sys.argv = ["dnntune", *request["args"]]
        try:
            dnntune.cli.main()
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(request: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            _child(request, out.fileno(), err.fileno())
        deadline = time.monotonic() + float(request["timeout"])
        status = None
        while status is None:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(code)
            elif time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"timeout": True}
            else:
                time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        return {
            "returncode": status,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        }


def main(path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as stream:
            line = stream.readline()
            if not line:
                continue
            reply = _run(json.loads(line))
            stream.write(json.dumps(reply).encode() + b"\n")
            stream.flush()


if __name__ == "__main__":
    main(sys.argv[1])
