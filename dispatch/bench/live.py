"""`griddispatch bench live`: report-to-tablet latency and delivery counts over Socket.IO.

One prepared demo database (`dispatch.cli.load_demo`). For each layout — one server process;
two server processes sharing the database with a private redis-server (REDIS_URL) — and in
the same run for the bare baseline:

- real: `griddispatch serve` (gevent). K clients connect as real Socket.IO clients
  (python-socketio AsyncClient on asyncio, websocket transport, in `--client-procs` child
  processes): committee boards (the district and every street) and tablets spread evenly
  over the demo grids, each with auth {token, since} of its grid's manager (one token per
  manager, shared by that grid's tablets). Reports are posted at R per second (operator
  token, open-loop schedule) for D seconds, alternating between the processes.
- bare: a minimal Flask-SocketIO gevent server (`dispatch.bench.baseline_server`), same
  clients (joining the same rooms), same rate, same grids: `POST /emit` emits an event of
  the real event's size to the report's area rooms (through the same Redis with two processes).

Latency is from each POST's send time (wall clock, same machine) to each client's receipt of
the report's 'reported' event. Every receipt is checked against the expected set, computed
here from the report's area chain and each client's rooms (a manager's grids, primary and
backup; a board's area): lost (expected, never received), duplicated (received again) and
unexpected (received by a client that should not see it).

Progress goes to stderr; a table and a final single-line JSON go to stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime

import click

from dispatch.bench.intake import (
    Workload,
    free_port,
    open_loop,
    postgres_database,
    prepare_demo,
    private_redis,
    server_exceptions,
    server_process,
    sqlite_database,
    stop,
    wait_healthy,
)

TARGETS = {"lost": 0, "duplicated": 0, "p99_ratio": 1.25}


def _say(message: str) -> None:
    click.echo(f"[bench live {time.strftime('%H:%M:%S')}] {message}", err=True)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))], 2)


# -- the client process ------------------------------------------------------------------

async def _client_main(spec_path: str, out_path: str) -> None:
    import logging

    import socketio

    logging.getLogger("engineio.client").setLevel(logging.CRITICAL)  # "packet queue is empty" at exit

    with open(spec_path) as f:
        spec = json.load(f)
    receipts: list[tuple[int, int, float]] = []
    disconnects: list[int] = []
    failures: list[str] = []
    connected: list = []
    gate = asyncio.Semaphore(spec.get("connect_concurrency", 50))

    async def one(entry: dict) -> None:
        cid = entry["id"]
        client = socketio.AsyncClient(reconnection=False)

        def on_event(data):
            if isinstance(data, dict) and data.get("type") == "reported":
                receipts.append((cid, data["incident_id"], time.time()))

        client.on("incident_event", on_event)
        client.on("disconnect", lambda *_: disconnects.append(cid))
        try:
            async with gate:
                await client.connect(entry["url"], auth=entry["auth"], transports=["websocket"],
                                     wait_timeout=60)
            connected.append(client)
        except Exception as exc:
            failures.append(f"{cid}: {exc!r}")

    await asyncio.gather(*(one(entry) for entry in spec["clients"]))
    print(json.dumps({"ready": len(connected), "failed": failures[:5], "n_failed": len(failures)}),
          flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
    with open(out_path, "w") as f:
        json.dump({"receipts": receipts, "disconnects_during_run": len(disconnects),
                   "connected": len(connected), "failed": len(failures)}, f)
    await asyncio.wait_for(asyncio.gather(*(c.disconnect() for c in connected),
                                          return_exceptions=True), timeout=30)


class ClientGroup:
    """Child processes holding the Socket.IO clients."""

    def __init__(self, entries: list[dict], procs: int, workdir: str) -> None:
        self.children = []
        for n in range(procs):
            mine = entries[n::procs]
            spec = os.path.join(workdir, f"clients-{n}.json")
            with open(spec, "w") as f:
                json.dump({"clients": mine}, f)
            out = os.path.join(workdir, f"receipts-{n}.json")
            process = subprocess.Popen([sys.executable, "-m", "dispatch.bench.live", "client", spec, out],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.children.append((process, out))

    def wait_ready(self) -> dict:
        ready = {"ready": 0, "n_failed": 0, "failed": []}
        for process, _out in self.children:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("a client process died while connecting")
            answer = json.loads(line)
            ready["ready"] += answer["ready"]
            ready["n_failed"] += answer["n_failed"]
            ready["failed"] += answer["failed"]
        return ready

    def finish(self) -> dict:
        for process, _out in self.children:
            process.stdin.write("stop\n")
            process.stdin.flush()
        merged = {"receipts": [], "disconnects_during_run": 0, "connected": 0, "failed": 0}
        for process, out in self.children:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            with open(out) as f:
                part = json.load(f)
            merged["receipts"] += part["receipts"]
            for key in ("disconnects_during_run", "connected", "failed"):
                merged[key] += part[key]
        return merged

    def kill(self) -> None:
        for process, _out in self.children:
            if process.poll() is None:
                process.kill()
                process.wait()


# -- servers ---------------------------------------------------------------------------------

@contextmanager
def bare_server(redis_url: str | None):
    port = free_port()
    args = [sys.executable, "-m", "dispatch.bench.baseline_server", "--port", str(port)]
    if redis_url:
        args += ["--redis", redis_url]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, "/health")
        yield base, process
    finally:
        stop(process)


# -- the benchmark -----------------------------------------------------------------------------

class Plan:
    """Who connects (with which rooms) and which grid each report is in."""

    def __init__(self, demo, *, clients: int, reports: int) -> None:
        self.demo = demo
        self.boards = sorted(demo.scopes)  # committee (district) and committee-<street>
        grids = sorted(demo.buildings)
        self.managers = [f"manager-{g}" for g in grids]
        n_tablets = max(0, clients - len(self.boards))
        self.clients: list[tuple[str, set[str]]] = []  # (username, area codes it watches)
        for board in self.boards[:clients]:
            self.clients.append((board, {demo.scopes[board]}))
        for j in range(n_tablets):
            manager = self.managers[j % len(self.managers)]
            self.clients.append((manager, set(demo.grid_rooms.get(manager, ()))))
        workload = Workload(demo, seed=20240602)
        self.reports = [workload.next() for _ in range(reports)]  # (grid, body)

    def expected(self, chain: list[str]) -> set[int]:
        codes = set(chain)
        return {cid for cid, (_user, rooms) in enumerate(self.clients) if rooms & codes}


def run_layout(plan: Plan, *, mode: str, bases: list[str], rate: float, duration: float,
               client_procs: int, workdir: str, grace: float, since: int | None,
               template: dict | None) -> tuple[dict, dict | None]:
    """One measured run (real or bare) on already running servers."""
    demo = plan.demo
    entries = []
    for cid, (user, rooms) in enumerate(plan.clients):
        if mode == "real":
            auth = {"token": demo.tokens[user], "since": since}
        else:
            auth = {"rooms": sorted(f"area:{code}" for code in rooms)}
        entries.append({"id": cid, "url": bases[cid % len(bases)], "auth": auth})
    group = ClientGroup(entries, client_procs, workdir)
    try:
        t0 = time.monotonic()
        ready = group.wait_ready()
        connect_s = time.monotonic() - t0
        _say(f"{mode}: {ready['ready']} clients connected in {connect_s:.1f} s "
             f"({ready['n_failed']} failed {ready['failed'][:2]})")
        time.sleep(1.0)
        n = min(len(plan.reports), int(rate * duration))
        sent: dict[int, float] = {}
        answered: dict[int, float] = {}  # when the POST's answer came back
        chains: dict[int, list[str]] = {}  # key (incident id or report index) → area chain
        keys: dict[int, int] = {}
        first_answer: list[dict] = []
        lock = threading.Lock()

        def body(i: int) -> bytes:
            grid, report = plan.reports[i]
            if mode == "real":
                return report
            data = dict(template or {})
            data.update({"seq": i + 1, "incident_id": i, "type": "reported"})
            chain = demo.chains[grid]
            return json.dumps({"rooms": [f"area:{c}" for c in chain], "data": data},
                              ensure_ascii=False).encode()

        def on_response(i: int, sent_at: float, status: int, answer: bytes) -> None:
            if status != 201:
                return
            if mode == "real":
                incident = json.loads(answer)
                key = incident["id"]
                chain = [a["code"] for level, a in incident["areas"].items()
                         if a and level in ("grid", "community", "street", "district")]
                if not first_answer:
                    first_answer.append(incident)
            else:
                key, chain = i, demo.chains[plan.reports[i][0]]
            with lock:
                sent[key], chains[key], keys[i] = sent_at, chain, key
                answered[key] = time.time()

        per_base = []
        threads = []
        for b, base in enumerate(bases):
            path, token = ("/api/v1/incidents", demo.operator_token) if mode == "real" else ("/emit", None)
            mine = list(range(b, n, len(bases)))

            def post_all(base=base, path=path, token=token, mine=mine):
                per_base.append(open_loop(
                    f"{mode}-post", base, path, token, lambda k: body(mine[k]),
                    rate=rate / len(bases), duration=len(mine) / (rate / len(bases)), workers=32,
                    on_response=lambda k, t, s, a: on_response(mine[k], t, s, a)))

            threads.append(threading.Thread(target=post_all))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(grace)
        got = group.finish()
    finally:
        group.kill()

    expected = {key: plan.expected(chain) for key, chain in chains.items()}
    counts = tally(expected, sent, got["receipts"])
    after = tally(expected, answered, got["receipts"])
    counts.update({"after_answer_p50_ms": after["p50_ms"], "after_answer_p99_ms": after["p99_ms"]})
    posts_ok = sum(p.ok for p in per_base)
    result = {
        "clients_connected": ready["ready"], "connect_failed": ready["n_failed"],
        "connect_s": round(connect_s, 1), "reports_posted": n, "reports_ok": posts_ok,
        "post_errors": sum(p.errors for p in per_base),
        "post_p99_ms": _pct([x for p in per_base for x in p.latencies_ms], 99),
        "disconnects_during_run": got["disconnects_during_run"], **counts,
    }
    return result, (first_answer[0] if first_answer else None)


def tally(expected: dict[int, set[int]], sent: dict[int, float],
          receipts: list[tuple[int, int, float]]) -> dict:
    """Match receipts (client, report key, time) against the expected clients of each report.

    A receipt of a report we did not post, or by a client outside the report's expected
    set, is unexpected; a second receipt of the same report by the same client is a
    duplicate; an expected (client, report) never received is lost. Latency is from the
    report's send time to the first receipt.
    """
    seen: set[tuple[int, int]] = set()
    latencies: list[float] = []
    duplicated = unexpected = 0
    for cid, key, t in receipts:
        if key not in expected or cid not in expected[key]:
            unexpected += 1
        elif (cid, key) in seen:
            duplicated += 1
        else:
            seen.add((cid, key))
            latencies.append((t - sent[key]) * 1000)
    total = sum(len(v) for v in expected.values())
    return {"expected_deliveries": total, "delivered": len(seen), "lost": total - len(seen),
            "duplicated": duplicated, "unexpected": unexpected,
            "p50_ms": _pct(latencies, 50), "p90_ms": _pct(latencies, 90),
            "p99_ms": _pct(latencies, 99), "max_ms": round(max(latencies), 2) if latencies else None}


def _max_seq(url: str) -> int:
    from sqlalchemy import func, select

    from dispatch.db import Database
    from dispatch.incidents.models import IncidentEvent

    db = Database(url)
    try:
        with db.session() as session:
            return session.scalar(select(func.max(IncidentEvent.seq))) or 0
    finally:
        db.dispose()


def bench_layout(plan: Plan, url: str, *, processes: int, rate: float, duration: float,
                 client_procs: int, grace: float, template: dict | None) -> tuple[dict, dict | None]:
    out: dict = {"processes": processes}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-live-") as workdir:
        redis_url = stack.enter_context(private_redis()) if processes > 1 else None
        env = {"REDIS_URL": redis_url} if redis_url else {}
        with ExitStack() as servers:
            started = [servers.enter_context(server_process(url, env=env)) for _ in range(processes)]
            bases = [base for base, _process in started]
            _say(f"{processes} process(es): real server(s) at {', '.join(bases)}")
            out["real"], answer = run_layout(plan, mode="real", bases=bases, rate=rate,
                                             duration=duration, client_procs=client_procs,
                                             workdir=workdir, grace=grace, since=_max_seq(url),
                                             template=None)
        out["real"]["server_exceptions"] = [server_exceptions(p.log_path) for _b, p in started]
        template = template or _template(answer)
        with ExitStack() as servers:
            bases = [servers.enter_context(bare_server(redis_url))[0] for _ in range(processes)]
            _say(f"{processes} process(es): bare Flask-SocketIO server(s) at {', '.join(bases)}")
            out["bare"], _ = run_layout(plan, mode="bare", bases=bases, rate=rate, duration=duration,
                                        client_procs=client_procs, workdir=workdir, grace=grace,
                                        since=None, template=template)
    r, b = out["real"]["p99_ms"], out["bare"]["p99_ms"]
    out["p99_ratio"] = round(r / b, 2) if r and b else None
    out["targets_met"] = {
        "lost": out["real"]["lost"] == 0 and out["real"]["delivered"] > 0,
        "duplicated": out["real"]["duplicated"] == 0 and out["real"]["unexpected"] == 0,
        "p99_ratio": out["p99_ratio"] is not None and out["p99_ratio"] <= TARGETS["p99_ratio"],
        "all_connected": out["real"]["clients_connected"] == len(plan.clients),
    }
    return out, template


def _template(incident: dict | None) -> dict:
    """What the real server pushes for a report (event fields + the incident), for the bare emit."""
    return {"public_id": (incident or {}).get("public_id"), "at": datetime.now(UTC).isoformat(),
            "version": 1, "actor": {"role": "operator", "id": 1, "display_name": "热线接线员"},
            "data": {"category": "rubbish", "channel": "operator"}, "incident": incident or {}}


def run(*, clients: int = 1000, rate: float = 50.0, duration: float = 30.0,
        layouts: tuple[int, ...] = (1, 2), client_procs: int = 2, database: str = "postgresql",
        postgres_url: str | None = "postgresql://postgres@127.0.0.1:5432/test",
        grace: float = 5.0) -> dict:
    figures: dict = {"bench": "live", "clients": clients, "rate_per_s": rate, "duration_s": duration,
                     "client_procs": client_procs, "database": database,
                     "date": datetime.now(UTC).date().isoformat(), "cpus": os.cpu_count(),
                     "python": platform.python_version(), "targets": TARGETS, "layouts": {}}
    with ExitStack() as stack:
        if database == "postgresql":
            url = stack.enter_context(postgres_database(postgres_url or ""))
            if url is None:
                raise click.ClickException("PostgreSQL is not reachable; use --database sqlite")
        else:
            url = stack.enter_context(sqlite_database())
        _say(f"loading the demo map and people ({database})")
        demo = prepare_demo(url, staff_tokens=True)
        plan = Plan(demo, clients=clients, reports=int(rate * duration))
        _say(f"{len(plan.clients)} clients: {len(plan.boards)} boards, "
             f"{len(plan.clients) - len(plan.boards)} tablets over {len(plan.managers)} grids")
        template = None
        for processes in layouts:
            figures["layouts"][str(processes)], template = bench_layout(
                plan, url, processes=processes, rate=rate, duration=duration,
                client_procs=client_procs, grace=grace, template=template)
    click.echo(table(figures))
    click.echo(json.dumps(figures, ensure_ascii=False))
    return figures


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def table(f: dict) -> str:
    rows = ["| layout | metric | griddispatch | bare Flask-SocketIO emit | ratio | target | met? |",
            "|---|---|---|---|---|---|---|"]
    for processes, r in f["layouts"].items():
        label = "1 process" if processes == "1" else f"{processes} processes + Redis"
        real, bare, met = r["real"], r["bare"], r["targets_met"]
        rows.append(f"| {label} | clients connected (connect time) | {real['clients_connected']} "
                    f"({real['connect_s']} s) | {bare['clients_connected']} ({bare['connect_s']} s) "
                    f"| – | {f['clients']} | {_yes(met['all_connected'])} |")
        rows.append(f"| {label} | reports posted OK / errors | {real['reports_ok']} / {real['post_errors']} "
                    f"| {bare['reports_ok']} / {bare['post_errors']} | – | – | – |")
        rows.append(f"| {label} | deliveries expected / delivered | {real['expected_deliveries']} / "
                    f"{real['delivered']} | {bare['expected_deliveries']} / {bare['delivered']} "
                    f"| – | – | – |")
        rows.append(f"| {label} | lost | {real['lost']} | {bare['lost']} | – | 0 | {_yes(met['lost'])} |")
        rows.append(f"| {label} | duplicated / unexpected | {real['duplicated']} / {real['unexpected']} "
                    f"| {bare['duplicated']} / {bare['unexpected']} | – | 0 | {_yes(met['duplicated'])} |")
        rows.append(f"| {label} | report→tablet p50 (ms) | {real['p50_ms']} | {bare['p50_ms']} "
                    f"| {_ratio(real['p50_ms'], bare['p50_ms'])} | – | – |")
        rows.append(f"| {label} | report→tablet p99 (ms) | {real['p99_ms']} | {bare['p99_ms']} "
                    f"| {_ratio(real['p99_ms'], bare['p99_ms'])} | ≤ 1.25× | {_yes(met['p99_ratio'])} |")
        rows.append(f"| {label} | receipt after the POST's answer p50 / p99 (ms) "
                    f"| {real['after_answer_p50_ms']} / {real['after_answer_p99_ms']} "
                    f"| {bare['after_answer_p50_ms']} / {bare['after_answer_p99_ms']} | – | – | – |")
        rows.append(f"| {label} | max (ms); POST p99 (ms, from schedule) | {real['max_ms']}; "
                    f"{real['post_p99_ms']} | {bare['max_ms']}; {bare['post_p99_ms']} | – | – | – |")
    return "\n".join(rows)


def _ratio(a, b) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "client":
    asyncio.run(_client_main(sys.argv[2], sys.argv[3]))
