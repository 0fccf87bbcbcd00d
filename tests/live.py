"""Helpers for live-push tests: a staffed database for running servers, and recording clients."""

from __future__ import annotations

import functools
import threading
import time
from datetime import UTC, datetime, timedelta

import requests
import socketio

from dispatch.app import create_app
from dispatch.people.models import OnCallShift
from tests.geodata import G1, G2, G3
from tests.world import PASSWORD, build_world


def staffed_database(database_url: str, tmp_path) -> dict[str, int]:
    """The test world in a database a server process will use; users by name → id.

    Real time runs in the server, so every manager is also on call for its grid around
    the clock: routing always finds someone, whatever the hour of the test run.
    """
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "TEST_CLOCK": True})
    app.extensions["griddispatch.db"].upgrade()
    world = build_world(app, tmp_path)
    now = datetime.now(UTC)
    with app.extensions["griddispatch.db"].session() as s:
        for user, grid in (("m1", G1), ("m2", G2), ("m3", G3)):
            s.add(OnCallShift(user_id=world.users[user], area_code=grid,
                              starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=365)))
    app.extensions["griddispatch.db"].dispose()
    return world.users


def login(base: str, username: str) -> str:
    response = requests.post(f"{base}/api/v1/auth/token",
                             json={"username": username, "password": PASSWORD}, timeout=10)
    response.raise_for_status()
    return response.json()["token"]


def crew_login(base: str, username: str) -> tuple[str, int]:
    """A crew member's token and the id of its crew."""
    token = login(base, username)
    me = requests.get(f"{base}/api/v1/auth/me", timeout=10, headers={"Authorization": f"Bearer {token}"})
    me.raise_for_status()
    return token, me.json()["crew_id"]


def set_crew_status(base: str, token: str, crew_id: int, status: str) -> None:
    response = requests.post(f"{base}/api/v1/crews/{crew_id}/status", timeout=10,
                             headers={"Authorization": f"Bearer {token}"}, json={"status": status})
    assert response.status_code == 200, response.text


def report(base: str, point, category: str = "no_water", token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.post(f"{base}/api/v1/incidents", timeout=10, headers=headers, json={
        "category": category, "location": {"lon": point[0], "lat": point[1]}})
    assert response.status_code == 201, response.text
    return response.json()


class Tablet:
    """A real Socket.IO client that keeps `since`, like static/js/live.js, and records what it gets."""

    def __init__(self, *, token: str | None = None, tracking_token: str | None = None,
                 since: int | None = 0, reconnection: bool = False) -> None:
        self.token = token
        self.tracking_token = tracking_token
        self.since = since
        self.events: list[dict] = []
        self.arrivals: list[int] = []  # every push's seq, duplicates too
        self.replays: list[dict] = []
        self.resyncs: list[dict] = []
        self.crews: list[dict] = []
        self.refused: list = []
        self.ended: list[tuple[str, dict]] = []  # ("signed_out" | "rooms_changed", {code, message})
        self.disconnects = 0
        self.changed = threading.Condition()
        self.client = socketio.Client(reconnection=reconnection, reconnection_delay=0.2,
                                      reconnection_delay_max=1)
        self._handle_events_in_arrival_order()
        self.client.on("incident_event", self._on_event)
        self.client.on("replayed", lambda data: self._record(self.replays, data))
        self.client.on("resync", lambda data: self._record(self.resyncs, data))
        self.client.on("crew", lambda data: self._record(self.crews, data))
        self.client.on("connect_error", lambda data: self._record(self.refused, data))
        for message in ("signed_out", "rooms_changed"):
            self.client.on(message, functools.partial(self._on_ended, message))
        self.client.on("disconnect", self._on_disconnect)

    def _auth(self) -> dict:
        auth = {"since": self.since}
        if self.token:
            auth["token"] = self.token
        if self.tracking_token:
            auth["tracking_token"] = self.tracking_token
        return auth

    def _handle_events_in_arrival_order(self) -> None:
        """python-engineio hands every message to a thread of its own, so two events sent in
        seq order could be handled out of order (and the later one's seq make the earlier
        one look like a duplicate). A browser, and live.js, handle them in arrival order:
        here Socket.IO EVENT packets ("2…") are handled in the reading thread, in order;
        anything else (connect, disconnect) as before."""
        eio = self.client.eio
        spawn = eio.start_background_task

        def start(target, *args, **kwargs):
            if target is eio.handlers.get("message") and args and isinstance(args[0], str) \
                    and args[0].startswith("2"):
                target(*args, **kwargs)
                return None
            return spawn(target, *args, **kwargs)

        eio.start_background_task = start

    def _record(self, bucket: list, data) -> None:
        with self.changed:
            bucket.append(data)
            self.changed.notify_all()

    def _on_ended(self, message: str, data: dict) -> None:
        self._record(self.ended, (message, data))

    def _on_disconnect(self, *_reason) -> None:
        with self.changed:
            self.disconnects += 1
            self.changed.notify_all()

    def _on_event(self, data: dict) -> None:
        with self.changed:
            self.arrivals.append(data["seq"])
            if self.since is None or data["seq"] > self.since:  # dedup by seq, as live.js does
                self.events.append(data)
                self.since = data["seq"]
            self.changed.notify_all()

    def connect(self, base: str, *, wait_replay: bool = True) -> Tablet:
        replays = len(self.replays)
        # After a disconnect by the server the client runs its handlers, then closes its
        # transport: connecting again in between is refused by the client itself.
        deadline = time.monotonic() + 10
        while self.client.eio.state != "disconnected" and time.monotonic() < deadline:
            time.sleep(0.02)
        self.client.connect(base, auth=self._auth, transports=["websocket"], wait_timeout=10)
        if wait_replay:
            self.wait(lambda: len(self.replays) > replays, "the replay")
        return self

    def wait(self, condition, what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting for {what}; got {self.seqs()}, "
                                         f"replays {self.replays}, resyncs {self.resyncs}, refused {self.refused}")
                self.changed.wait(remaining)

    def wait_for_seq(self, seq: int, timeout: float = 15.0) -> None:
        self.wait(lambda: self.since is not None and self.since >= seq, f"seq {seq}", timeout)

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]

    def disconnect(self) -> None:
        self.client.disconnect()


class RawSocket:
    """Socket.IO spoken frame by frame over a websocket, for what no well-behaved client
    sends: the server's answers are read as they come ("0" open, "40" connected, "44"
    refused, "42" events), its pings answered."""

    def __init__(self, base: str) -> None:
        import websocket

        self.ws = websocket.create_connection(
            base.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket", timeout=10)
        assert self.ws.recv().startswith("0")  # Engine.IO open

    def send(self, frame: str) -> None:
        self.ws.send(frame)

    def next(self, timeout: float = 10.0) -> str:
        """The next Socket.IO packet ("4..."), skipping pings (answered) and noops."""
        self.ws.settimeout(timeout)
        while True:
            frame = self.ws.recv()
            if frame == "2":
                self.ws.send("3")
                continue
            return frame

    def events(self, until, timeout: float = 15.0) -> list:
        """[name, data] of each event received until `until(name, data)` holds."""
        import json

        got, deadline = [], time.monotonic() + timeout
        while True:
            frame = self.next(max(0.1, deadline - time.monotonic()))
            if frame.startswith("42"):
                name, *data = json.loads(frame[2:])
                got.append([name, data[0] if data else None])
                if until(*got[-1]):
                    return got
            elif frame.startswith("41") or frame == "1":
                return got

    def close(self) -> None:
        self.ws.close()


def timeline_seqs(base: str, token: str, incident: dict) -> list[int]:
    response = requests.get(f"{base}/api/v1/incidents/{incident['id']}/events", timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return [e["seq"] for e in response.json()["events"]]


class PrivateRedis:
    """A redis-server of the test's own on a free port, so it can be stopped and restarted."""

    def __init__(self) -> None:
        import shutil

        from tests.server import free_port

        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        import subprocess

        import redis

        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
