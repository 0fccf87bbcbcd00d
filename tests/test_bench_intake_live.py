"""`bench intake` and `bench live` on tiny runs: they print their table and JSON line, and
deliveries are counted right. No timing assertions: timings belong in docs/BENCHMARKS.md."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dispatch.app import create_app
from dispatch.bench.live import tally
from dispatch.cli import main


def _invoke(args: list[str]) -> tuple[list[str], dict]:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("[bench")]
    return lines, json.loads(lines[-1])


def test_baseline_route_only_when_asked_for(tmp_path, monkeypatch):
    monkeypatch.delenv("GRIDDISPATCH_BENCH_BASELINE_ROUTE", raising=False)
    url = f"sqlite:///{tmp_path}/a.sqlite3"
    plain = create_app({"TESTING": True, "DATABASE_URL": url})
    assert not any(r.rule.startswith("/bench") for r in plain.url_map.iter_rules())
    monkeypatch.setenv("GRIDDISPATCH_BENCH_BASELINE_ROUTE", "1")
    bench = create_app({"TESTING": True, "DATABASE_URL": url})
    assert "/bench/echo" in {r.rule for r in bench.url_map.iter_rules()}
    answer = bench.test_client().post("/bench/echo", json={"category": "rubbish"})
    assert answer.status_code == 201 and answer.get_json() == {"ok": True}


def test_bench_intake_tiny_run_prints_table_and_json():
    lines, figures = _invoke(["bench", "intake", "--database", "sqlite", "--postgres-url", "",
                              "--clients", "2", "--duration", "0.5", "--rate", "20"])
    assert lines[0].startswith("| database | metric |")
    assert any("closed loop, 2 clients: reports/s" in line for line in lines)
    assert figures["bench"] == "intake"
    run = figures["databases"]["sqlite"]
    for phase in ("echo_closed", "intake_closed", "intake_open", "echo_open"):
        assert run[phase]["errors"] == 0, run[phase]
        assert run[phase]["ok"] > 0
    assert run["intake_open"]["sent"] == 10  # 20/s for 0.5 s
    # Every 201 is an incident in the database (plus the warm-up reports).
    assert run["stored_incidents"] >= run["intake_closed"]["ok"] + run["intake_open"]["ok"]
    assert set(figures["targets_met"]) == {"sqlite_throughput_ratio", "sqlite_p99_ms"}


def test_bench_intake_spreads_every_phase_over_several_processes():
    lines, figures = _invoke(["bench", "intake", "--database", "sqlite", "--postgres-url", "",
                              "--clients", "4", "--duration", "0.5", "--rate", "20",
                              "--processes", "2"])
    assert any(line.startswith("| sqlite, 2 processes | closed loop") for line in lines)
    run = figures["databases"]["sqlite"]
    assert figures["processes"] == 2 and run["processes"] == 2
    for phase in ("echo_closed", "intake_closed", "intake_open", "echo_open"):
        assert run[phase]["errors"] == 0, run[phase]
        # Both servers answered, the baseline's phases as much as the intake's.
        assert len(run[phase]["by_server"]) == 2 and min(run[phase]["by_server"].values()) > 0
    assert run["intake_open"]["by_server"] and sum(run["intake_open"]["by_server"].values()) == 10
    assert run["stored_incidents"] >= run["intake_closed"]["ok"] + run["intake_open"]["ok"]
    assert run["server_exceptions"]["tracebacks"] == 0


def test_tally_counts_lost_duplicated_and_unexpected():
    expected = {7: {0, 1, 2}, 8: {2}}
    sent = {7: 100.0, 8: 101.0}
    receipts = [(0, 7, 100.010), (1, 7, 100.020), (1, 7, 100.030),  # client 1 twice
                (3, 7, 100.040),  # client 3 may not see incident 7
                (2, 8, 101.005), (2, 9, 101.5)]  # incident 9 was never posted
    counts = tally(expected, sent, receipts)
    assert counts["expected_deliveries"] == 4
    assert counts["delivered"] == 3 and counts["lost"] == 1  # client 2 never got incident 7
    assert counts["duplicated"] == 1 and counts["unexpected"] == 2
    assert counts["p50_ms"] == pytest.approx(10.0, abs=0.01)


def test_bench_live_tiny_run_counts_every_delivery():
    pytest.importorskip("aiohttp")
    lines, figures = _invoke(["bench", "live", "--database", "sqlite", "--layout", "1",
                              "--clients", "12", "--rate", "4", "--duration", "2",
                              "--client-procs", "1", "--grace", "2"])
    assert lines[0].startswith("| layout | metric |")
    assert figures["bench"] == "live"
    layout = figures["layouts"]["1"]
    for mode in ("real", "bare"):
        run = layout[mode]
        assert run["clients_connected"] == 12 and run["reports_ok"] == 8, run
        # 4 boards (the district sees every report) and 8 tablets: at least one each.
        assert run["expected_deliveries"] >= 8
        assert run["delivered"] == run["expected_deliveries"], run
        assert (run["lost"], run["duplicated"], run["unexpected"]) == (0, 0, 0)
    assert layout["real"]["expected_deliveries"] == layout["bare"]["expected_deliveries"]
