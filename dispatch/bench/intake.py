"""`griddispatch bench intake`: POST /api/v1/incidents on a running server, against a bare route.

For each database (a temp SQLite file; a fresh PostgreSQL database, created and dropped):
load the demo map and people (`dispatch.cli.load_demo`), start `griddispatch serve` (gevent)
in a child process with the baseline route on (`GRIDDISPATCH_BENCH_BASELINE_ROUTE=1`:
`POST /bench/echo` on the same app factory and server, parses the JSON, answers 201), then:

With `--processes N` there are N such servers on the one database (and a private Redis, as
the documented multi-process deployment has), and every phase, the baseline's too, is
spread over them alike.

- closed loop: C client threads, each with its own keep-alive connection, post back to back
  for D seconds, first to the echo route (baseline), then to the intake: reports/s;
- open loop: reports at a fixed offered rate (default 100/s) for D seconds, each sent at its
  scheduled time by a pool of threads; latency is measured from the *scheduled* time, so a
  server that falls behind shows its queueing (no coordinated omission): p50/p99, both for
  the intake and for the echo route.

Reports are realistic: an operator token (operators are not rate-limited), every grid of
the demo map equally often, a real building of the grid given by its code or by a point
inside it, categories weighted as a hotline sees them, Chinese descriptions, a phone
number on half of them. The client runs in this process, on the same 2 cores as the
server; its CPU use is printed so a client bottleneck would show.

Progress goes to stderr; a table and a final single-line JSON go to stdout.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

import click

TARGETS = {"throughput_ratio": 0.5, "p99_ms": 50.0}
CATEGORY_WEIGHTS = {
    "rubbish": 15, "noise": 12, "street_light": 10, "blocked_drain": 10, "no_water": 10,
    "other": 9, "lift_fault": 8, "safety_hazard": 8, "neighbour_dispute": 6, "burst_pipe": 5,
    "power_cut": 5, "gas_smell": 2,
}
DESCRIPTIONS = [
    "楼道里有积水，好像是水管漏了", "单元门口垃圾两天没人清运", "晚上十一点后楼上装修噪音很大",
    "小区路灯不亮，老人晚上出行不便", "电梯卡在三楼，里面没人", "闻到一股煤气味，请尽快来看看",
    "家里从早上开始停水", "整栋楼停电了", "下水道返水，厨房堵了", "楼顶广告牌松动有安全隐患",
    "邻居在楼道堆放杂物，协商未果", "井盖缺失，有人差点踩空",
]


def _say(message: str) -> None:
    click.echo(f"[bench intake {time.strftime('%H:%M:%S')}] {message}", err=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the demo database and the workload -------------------------------------------------

@dataclass
class Demo:
    """What the benchmarks need from a prepared demo database."""

    url: str
    operator_token: str
    chains: dict[str, list[str]]  # grid code → [grid, community, street, district]
    buildings: dict[str, list[tuple[str, float, float]]]  # grid code → (code, lon, lat)
    tokens: dict[str, str] = field(default_factory=dict)  # username → bearer token
    grid_rooms: dict[str, set[str]] = field(default_factory=dict)  # manager username → its grids
    scopes: dict[str, str] = field(default_factory=dict)  # committee username → its area
    max_seq: int = 0


def prepare_demo(url: str, *, staff_tokens: bool = False) -> Demo:
    """Load the demo map and people into `url`; a token for the operator (and, with
    `staff_tokens`, for every grid manager `manager-<grid>` and committee member)."""
    import shapely
    from sqlalchemy import func, select

    from dispatch.app import create_app
    from dispatch.cli import load_demo
    from dispatch.incidents.models import IncidentEvent
    from dispatch.people.auth import issue_token
    from dispatch.people.models import GridAssignment, User
    from grids.store import Area

    app = create_app({"DATABASE_URL": url})
    load_demo(app)
    db = app.extensions["griddispatch.db"]
    now = datetime.now(UTC)
    with db.session() as session:
        areas = {a.code: a for a in session.scalars(select(Area).where(Area.level != "unit"))}
        chains, buildings = {}, {}
        for area in areas.values():
            if area.level == "grid":
                chain, code = [], area.code
                while code is not None:
                    chain.append(code)
                    code = areas[code].parent_code if code in areas else None
                chains[area.code] = chain
        for area in sorted(areas.values(), key=lambda a: a.code):
            if area.level == "building" and area.parent_code in chains:
                point = shapely.from_wkb(area.geom_wkb).representative_point()
                buildings.setdefault(area.parent_code, []).append((area.code, point.x, point.y))
        users = {u.username: u for u in session.scalars(select(User))}
        demo = Demo(url=url, operator_token="", chains={g: chains[g] for g in buildings},
                    buildings=buildings)
        wanted = {"operator"}
        if staff_tokens:
            wanted |= {name for name, u in users.items()
                       if u.role == "committee" or (u.role == "grid_manager" and name.startswith("manager-"))}
        for username in sorted(wanted):
            demo.tokens[username], _row = issue_token(session, user=users[username], now=now, hours=24)
        demo.operator_token = demo.tokens["operator"]
        for user_id, grid in session.execute(select(GridAssignment.user_id, GridAssignment.grid_code)):
            user = next((u for u in users.values() if u.id == user_id), None)
            if user is not None:
                demo.grid_rooms.setdefault(user.username, set()).add(grid)
        demo.scopes = {u.username: u.scope_area_code for u in users.values()
                       if u.role == "committee" and u.scope_area_code}
        demo.max_seq = session.scalar(select(func.max(IncidentEvent.seq))) or 0
        session.commit()
    db.dispose()
    return demo


class Workload:
    """Deterministic realistic report bodies: every grid equally often, real buildings."""

    def __init__(self, demo: Demo, seed: int = 20240601) -> None:
        self.rng = random.Random(seed)
        self.grids = sorted(demo.buildings)
        self.demo = demo
        self.categories = list(CATEGORY_WEIGHTS)
        self.weights = list(CATEGORY_WEIGHTS.values())
        self._lock = threading.Lock()

    def next(self) -> tuple[str, bytes]:
        """(grid code, JSON body) of the next report."""
        with self._lock:
            rng = self.rng
            grid = rng.choice(self.grids)
            code, lon, lat = rng.choice(self.demo.buildings[grid])
            location = ({"building_code": code} if rng.random() < 0.5
                        else {"lon": round(lon, 7), "lat": round(lat, 7), "crs": "wgs84"})
            body = {"category": rng.choices(self.categories, self.weights)[0],
                    "description": rng.choice(DESCRIPTIONS), "location": location}
            if rng.random() < 0.5:
                body["reporter_phone"] = f"139{rng.randrange(10**8):08d}"
        return grid, json.dumps(body, ensure_ascii=False).encode()


# -- servers and databases ----------------------------------------------------------------

@contextmanager
def server_process(database_url: str, *, env: dict | None = None, port: int | None = None,
                   command: str = "serve", log_path: str | None = None):
    """`griddispatch serve` in a child process; yields (base URL, process).

    Its output goes to `log_path` (a temp file by default), never to a pipe nobody reads.
    """
    port = port or free_port()
    log_path = log_path or tempfile.mkstemp(prefix="bench-server-", suffix=".log")[1]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dispatch", command, "--port", str(port)],
            env={**os.environ, "DATABASE_URL": database_url, **(env or {})},
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )
    process.log_path = log_path
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, "/api/v1/health")
        yield base, process
    finally:
        stop(process)


def server_exceptions(log_path: str) -> dict:
    """How many tracebacks a server logged, and the last exception line; a clean log is removed."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return {"tracebacks": None, "last": None}
    last = None
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            last = next((lines[j] for j in range(i + 1, len(lines))
                         if lines[j] and not lines[j].startswith((" ", "Traceback"))), None)
    tracebacks = sum(line.startswith("Traceback") for line in lines)
    if not tracebacks:
        with suppress(OSError):
            os.remove(log_path)
    return {"tracebacks": tracebacks, "last": last, "log": log_path if tracebacks else None}


def wait_healthy(base: str, process, path: str) -> None:
    host, port = base.rsplit("/", 1)[1].split(":")
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited (see {getattr(process, 'log_path', 'its output')})")
        with suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base} did not answer within 60 s")
        time.sleep(0.1)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def stop(process) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def private_redis():
    """A throwaway redis-server for the processes of one layout; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise click.ClickException("redis-server not found; needed to run several server processes")
    import redis

    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        process.kill()
        process.wait()


@contextmanager
def postgres_database(admin_url: str):
    """A fresh PostgreSQL database for this run; dropped afterwards. Yields its URL or None."""
    import sqlalchemy as sa

    from dispatch.db import normalise_url

    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"griddispatch_bench_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _say(f"PostgreSQL not reachable ({exc.orig}); skipped")
        yield None
        return
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database():
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        yield f"sqlite:///{tmp}/demo.sqlite3"


# -- the load generator --------------------------------------------------------------------

class Poster:
    """Posts with http.client (light on the client's CPU), a new connection per request.

    Keep-alive is off by default: the server writes a response's headers and body in two
    send() calls without TCP_NODELAY, so on a kept-alive connection Nagle's algorithm waits
    for the client's delayed ACK and every request takes ~40 ms (measured: 44 ms p50 for the
    bare echo route). A fresh connection per request costs ~0.5 ms on localhost instead.
    """

    def __init__(self, base: str, path: str, token: str | None, keep_alive: bool = False) -> None:
        host, port = base.rsplit("/", 1)[1].split(":")
        self.host, self.port, self.path = host, int(port), path
        self.keep_alive = keep_alive
        self.headers = {"Content-Type": "application/json"}
        if not keep_alive:
            self.headers["Connection"] = "close"
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request("POST", self.path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                answer = response.status, response.read()
                if not self.keep_alive:
                    self.close()
                return answer
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    return 0, b""
        return 0, b""

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Phase:
    name: str
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    client_cpu: float = 0.0  # client process CPU seconds per wall second (1.0 = one core)
    statuses: dict[int, int] = field(default_factory=dict)
    server_cpu_s: float = 0.0
    by_server: dict[int, int] = field(default_factory=dict)  # requests per server port

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]

    def summary(self) -> dict:
        return {"sent": self.sent, "ok": self.ok, "errors": self.errors,
                "seconds": round(self.seconds, 2), "per_s": round(self.rate, 1),
                "p50_ms": _r(self.pct(50)), "p99_ms": _r(self.pct(99)),
                "max_ms": _r(max(self.latencies_ms) if self.latencies_ms else None),
                "client_cpu_cores": round(self.client_cpu, 2),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "by_server": {str(k): v for k, v in sorted(self.by_server.items())}}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _record(phase: Phase, lock: threading.Lock, status: int, latency_ms: float,
            port: int | None = None) -> None:
    with lock:
        phase.sent += 1
        if port is not None:
            phase.by_server[port] = phase.by_server.get(port, 0) + 1
        phase.statuses[status] = phase.statuses.get(status, 0) + 1
        if status == 201:
            phase.ok += 1
            phase.latencies_ms.append(latency_ms)
        else:
            phase.errors += 1


def _run(phase: Phase, worker, threads: int, *, start: float, start_cpu: float) -> Phase:
    """Run `worker` on that many threads to the end; the phase's duration and client CPU."""
    running = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    phase.seconds = time.perf_counter() - start
    phase.client_cpu = (time.process_time() - start_cpu) / phase.seconds
    return phase


def _bases(base: str | list[str]) -> list[str]:
    return [base] if isinstance(base, str) else list(base)


def closed_loop(name: str, base: str | list[str], path: str, token: str | None, bodies, *,
                clients: int, duration: float) -> Phase:
    """`clients` threads posting back to back for `duration` seconds (spread over the servers
    when `base` is a list)."""
    phase, lock = Phase(name), threading.Lock()
    start_cpu, start = time.process_time(), time.perf_counter()
    end = start + duration
    bases, spread = _bases(base), itertools.count()

    def worker():
        poster = Poster(bases[next(spread) % len(bases)], path, token)
        while time.perf_counter() < end:
            body = bodies()
            t0 = time.perf_counter()
            status, _ = poster.post(body)
            _record(phase, lock, status, (time.perf_counter() - t0) * 1000, poster.port)
        poster.close()

    return _run(phase, worker, clients, start=start, start_cpu=start_cpu)


def open_loop(name: str, base: str | list[str], path: str, token: str | None, bodies, *,
              rate: float, duration: float, workers: int = 64, on_response=None) -> Phase:
    """Requests at a fixed schedule (rate/s); latency from each one's scheduled time. With
    several servers, request i goes to server i mod n."""
    phase, lock = Phase(name), threading.Lock()
    total = int(rate * duration)
    counter = itertools.count()
    start_cpu = time.process_time()
    start = time.perf_counter() + 0.05
    bases = _bases(base)

    def worker():
        posters = [Poster(b, path, token) for b in bases]
        while True:
            i = next(counter)
            if i >= total:
                break
            poster = posters[i % len(posters)]
            scheduled = start + i / rate
            body = bodies(i)
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent_at = time.time()
            status, answer = poster.post(body)
            _record(phase, lock, status, (time.perf_counter() - scheduled) * 1000, poster.port)
            if on_response is not None:
                on_response(i, sent_at, status, answer)
        for poster in posters:
            poster.close()

    return _run(phase, worker, workers, start=start, start_cpu=start_cpu)


# -- the benchmark ---------------------------------------------------------------------------

def bench_database(kind: str, url: str, *, clients: int, duration: float, rate: float,
                   profile_dir: str | None, processes: int = 1) -> dict:
    _say(f"{kind}: loading the demo map and people")
    demo = prepare_demo(url)
    workload = Workload(demo)
    echo_body = workload.next()[1]

    def report_body(_i=None):
        return workload.next()[1]

    def echo(_i=None):
        return echo_body

    results: dict = {"database": kind, "processes": processes}
    with ExitStack() as stack:
        # Several processes are the documented deployment: one database, Redis for live fan-out.
        env = {"GRIDDISPATCH_BENCH_BASELINE_ROUTE": "1"}
        if processes > 1:
            env["REDIS_URL"] = stack.enter_context(private_redis())
        servers = [stack.enter_context(server_process(url, env=env)) for _ in range(processes)]
        bases = [base for base, _ in servers]
        pids = [process.pid for _, process in servers]
        _say(f"{kind}: {processes} server process(es) up at {', '.join(bases)} "
             f"(pid {', '.join(map(str, pids))}); warming up")
        closed_loop("warm-echo", bases, "/bench/echo", None, echo, clients=2 * processes,
                    duration=min(1.0, duration))
        closed_loop("warm-intake", bases, "/api/v1/incidents", demo.operator_token, report_body,
                    clients=2 * processes, duration=min(1.0, duration))
        phases = []

        def measured(make):
            cpu = sum(process_cpu_s(pid) for pid in pids)
            phase = make()
            phase.server_cpu_s = sum(process_cpu_s(pid) for pid in pids) - cpu
            phases.append(phase)

        _say(f"{kind}: closed loop, {clients} clients, {duration:g} s each")
        measured(lambda: closed_loop("echo_closed", bases, "/bench/echo", None, echo,
                                     clients=clients, duration=duration))
        with _py_spy(profile_dir, f"{kind}-closed", pids[0], duration):
            measured(lambda: closed_loop("intake_closed", bases, "/api/v1/incidents",
                                         demo.operator_token, report_body, clients=clients,
                                         duration=duration))
        _say(f"{kind}: open loop at {rate:g}/s, {duration:g} s each")
        with _py_spy(profile_dir, f"{kind}-open", pids[0], duration):
            measured(lambda: open_loop("intake_open", bases, "/api/v1/incidents", demo.operator_token,
                                       report_body, rate=rate, duration=duration))
        measured(lambda: open_loop("echo_open", bases, "/bench/echo", None, echo, rate=rate,
                                   duration=duration))
    for phase in phases:
        results[phase.name] = phase.summary()
        results[phase.name]["server_cpu_ms_per_request"] = (
            round(phase.server_cpu_s * 1000 / phase.sent, 2) if phase.sent else None)
    results["stored_incidents"] = _count_incidents(url)
    logs = [server_exceptions(process.log_path) for _, process in servers]
    results["server_exceptions"] = {
        "tracebacks": sum(log["tracebacks"] or 0 for log in logs),
        "last": next((log["last"] for log in reversed(logs) if log["last"]), None),
        "log": [log["log"] for log in logs if log.get("log")] or None,
    }
    results["throughput_ratio"] = (round(results["intake_closed"]["per_s"] / results["echo_closed"]["per_s"], 3)
                                   if results["echo_closed"]["per_s"] else None)
    return results


@contextmanager
def _py_spy(profile_dir: str | None, label: str, pid: int, duration: float):
    if not profile_dir:
        yield
        return
    os.makedirs(profile_dir, exist_ok=True)
    out = os.path.join(profile_dir, f"intake-{label}.txt")
    binary = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy") or "py-spy"
    spy = subprocess.Popen([binary, "record", "--pid", str(pid), "--duration", str(int(duration)),
                            "--format", "raw", "--output", out, "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            spy.wait(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
        _say(f"py-spy profile (collapsed stacks): {out}")


def _count_incidents(url: str) -> int:
    from sqlalchemy import func, select

    from dispatch.db import Database
    from dispatch.incidents.models import Incident

    db = Database(url)
    try:
        with db.session() as session:
            return session.scalar(select(func.count()).select_from(Incident)) or 0
    finally:
        db.dispose()


def run(*, clients: int = 16, duration: float = 10.0, rate: float = 100.0,
        postgres_url: str | None = "postgresql://postgres@127.0.0.1:5432/test",
        databases: tuple[str, ...] = ("sqlite", "postgresql"), profile_dir: str | None = None,
        processes: int = 1) -> dict:
    figures: dict = {
        "bench": "intake", "clients": clients, "duration_s": duration, "offered_per_s": rate,
        "processes": processes,
        "date": datetime.now(UTC).date().isoformat(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "targets": TARGETS, "databases": {},
    }
    for kind in databases:
        if kind == "sqlite":
            with sqlite_database() as url:
                figures["databases"][kind] = bench_database(kind, url, clients=clients, duration=duration,
                                                            rate=rate, profile_dir=profile_dir,
                                                            processes=processes)
        elif postgres_url:
            with postgres_database(postgres_url) as url:
                if url is not None:
                    figures["databases"][kind] = bench_database(kind, url, clients=clients,
                                                                duration=duration, rate=rate,
                                                                profile_dir=profile_dir,
                                                                processes=processes)
    met = {}
    for kind, r in figures["databases"].items():
        met[f"{kind}_throughput_ratio"] = (r["throughput_ratio"] is not None
                                           and r["throughput_ratio"] >= TARGETS["throughput_ratio"])
        p99 = r["intake_open"]["p99_ms"]
        met[f"{kind}_p99_ms"] = (p99 is not None and p99 <= TARGETS["p99_ms"]
                                 and r["intake_open"]["errors"] == 0)
    figures["targets_met"] = met
    click.echo(table(figures))
    click.echo(json.dumps(figures, ensure_ascii=False))
    return figures


def _yes(met: bool | None) -> str:
    return "–" if met is None else ("yes" if met else "**no**")


def table(f: dict) -> str:
    rows = ["| database | metric | intake | baseline (/bench/echo) | ratio | target | met? |",
            "|---|---|---|---|---|---|---|"]
    for key, r in f["databases"].items():
        ic, ec, io, eo = r["intake_closed"], r["echo_closed"], r["intake_open"], r["echo_open"]
        kind = key if r.get("processes", 1) == 1 else f"{key}, {r['processes']} processes"
        rows.append(f"| {kind} | closed loop, {f['clients']} clients: reports/s | {ic['per_s']:.1f} "
                    f"| {ec['per_s']:.1f} | {r['throughput_ratio']:.3f} | ≥ 0.5 "
                    f"| {_yes(f['targets_met'][f'{key}_throughput_ratio'])} |")
        rows.append(f"| {kind} | closed loop latency p50 / p99 (ms) | {ic['p50_ms']} / {ic['p99_ms']} "
                    f"| {ec['p50_ms']} / {ec['p99_ms']} | – | – | – |")
        rows.append(f"| {kind} | open loop {f['offered_per_s']:g}/s: p50 (ms, from schedule) "
                    f"| {io['p50_ms']} | {eo['p50_ms']} | – | – | – |")
        ratio = f"{io['p99_ms'] / eo['p99_ms']:.1f}×" if io["p99_ms"] and eo["p99_ms"] else "–"
        rows.append(f"| {kind} | open loop {f['offered_per_s']:g}/s: p99 (ms, from schedule) "
                    f"| {io['p99_ms']} | {eo['p99_ms']} | {ratio} | ≤ 50 ms "
                    f"| {_yes(f['targets_met'][f'{key}_p99_ms'])} |")
        rows.append(f"| {kind} | open loop: achieved/s, errors, max (ms) | {io['per_s']} , "
                    f"{io['errors']}, {io['max_ms']} | {eo['per_s']}, {eo['errors']}, {eo['max_ms']} "
                    f"| – | – | – |")
        rows.append(f"| {kind} | client CPU (cores) closed / open | {ic['client_cpu_cores']} / "
                    f"{io['client_cpu_cores']} | {ec['client_cpu_cores']} / {eo['client_cpu_cores']} "
                    f"| – | – | – |")
        rows.append(f"| {kind} | server CPU ms per request closed / open "
                    f"| {ic['server_cpu_ms_per_request']} / {io['server_cpu_ms_per_request']} "
                    f"| {ec['server_cpu_ms_per_request']} / {eo['server_cpu_ms_per_request']} "
                    f"| – | – | – |")
        rows.append(f"| {kind} | server tracebacks logged (last) | {r['server_exceptions']['tracebacks']} "
                    f"({r['server_exceptions']['last']}) | – | – | – | – |")
        rows.append(f"| {kind} | incidents stored / 201s | {r['stored_incidents']} / "
                    f"{ic['ok'] + io['ok']} (+ warm-up) | – | – | – | – |")
    return "\n".join(rows)
