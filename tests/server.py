"""Run a real griddispatch server in a child process for tests that need one."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import requests

from dispatch.bench.intake import free_port, stop


@contextmanager
def running_server(database_url: str, *args: str, command: str = "serve", env: dict | None = None,
                   port: int | None = None, gunicorn: bool = False, workers: int = 1):
    """Start `griddispatch <command>` on a port (a free one by default); yield its base URL; stop it.

    With `gunicorn`, the server is instead the README's gunicorn command (one gevent worker,
    or `workers` of them on the one port).
    `running_server.last_process` is the newest server's process, for tests that kill it, and
    `running_server.last_output` the temporary file its output goes to: a pipe nobody reads
    fills up (64 KB of logged tracebacks during a database outage) and then blocks the
    server on its next log line.
    """
    port = port or free_port()
    argv = [sys.executable, "-m", "dispatch", command, "--port", str(port), *args]
    if gunicorn:
        argv = [sys.executable, "-m", "gunicorn", "-k", "dispatch.gunicorn_worker.Worker", "-w", str(workers),
                "-b", f"127.0.0.1:{port}", "--no-control-socket", "--graceful-timeout", "5",
                "dispatch.wsgi:app"]
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            argv,
            env={**os.environ, "DATABASE_URL": database_url, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running_server.last_process = process
        running_server.last_output = output
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    output.seek(0)
                    raise RuntimeError(f"server exited: {output.read()}")
                try:
                    if requests.get(f"{base}/api/v1/health", timeout=1).ok:
                        break
                except (requests.ConnectionError, requests.Timeout):
                    pass  # not listening yet, or (gunicorn) listening before its worker runs
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not answer within 60 s")
                time.sleep(0.1)
            yield base
        finally:
            stop(process)


def children(pid: int) -> list[int]:
    """The processes `pid` started (gunicorn's workers, for its master)."""
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def holding_connections(pids: list[int], port: int) -> set[int]:
    """Which of these processes hold an established TCP connection on this local port: with
    several gunicorn workers on one port, which of them a client's socket landed on."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state, inode = row.split()[1], row.split()[3], row.split()[9]
                if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
                    established.add(f"socket:[{inode}]")
    holding = set()
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in established:
                    holding.add(pid)
            except OSError:
                pass  # closed meanwhile
    return holding
