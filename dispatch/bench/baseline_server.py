"""Baselines for `bench intake` and `bench live`, measured in the same run as the real thing.

- `register_echo(app)`: a bare `POST /bench/echo` on griddispatch's own app (same factory,
  same gevent server) that only parses the JSON body and answers 201. It exists only when
  `BENCH_BASELINE_ROUTE` is set (env `GRIDDISPATCH_BENCH_BASELINE_ROUTE=1`, which only the
  benchmark sets), and lives outside /api/v1, so it is not part of the API.
- `python -m dispatch.bench.baseline_server --port P [--redis URL]`: a minimal
  Flask-SocketIO gevent server. Clients connect with auth {"rooms": [...]} and join those
  rooms; `POST /emit {"rooms": [...], "event": ..., "data": ...}` emits to them (through
  Redis when --redis is given, like the real server's multi-process mode).
"""

from __future__ import annotations

import argparse


def register_echo(app) -> None:
    from flask import jsonify, request

    def echo():
        body = request.get_json(silent=True)
        response = jsonify({"ok": body is not None})
        response.status_code = 201
        return response

    app.add_url_rule("/bench/echo", "bench_echo", echo, methods=["POST"])


def serve_bare_emit(port: int, redis_url: str | None) -> None:
    from gevent import monkey

    monkey.patch_all()
    from flask import Flask, jsonify, request
    from flask_socketio import SocketIO, join_room

    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="gevent", message_queue=redis_url,
                        logger=False, engineio_logger=False)

    @socketio.on("connect")
    def connect(auth):
        for room in (auth or {}).get("rooms", []):
            join_room(room)
        return True

    @app.get("/health")
    def health():
        return jsonify({"ok": True})

    @app.post("/emit")
    def emit():
        body = request.get_json()
        socketio.emit(body.get("event", "incident_event"), body["data"], to=body["rooms"],
                      namespace="/")
        return jsonify({"ok": True}), 201

    socketio.run(app, host="127.0.0.1", port=port, log_output=False, use_reloader=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis")
    args = parser.parse_args()
    serve_bare_emit(args.port, args.redis)
