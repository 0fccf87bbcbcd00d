"""The HTTP server: gevent's WSGI server with websockets, for `griddispatch serve` and, as a
gunicorn worker class (`dispatch.gunicorn_worker.Worker`), for several processes.

Both answer what gevent's HTTP server refuses before the app sees a request (an address
over 8 KB, a request that is not HTTP) as JSON like every other error: gevent's own answers
have an empty body a client cannot act on.
"""

from __future__ import annotations

import json
import socket

from flask import Flask
from gevent import pywsgi
from geventwebsocket.handler import WebSocketHandler

_REFUSED_UNREAD = {
    "414": ("414 URI Too Long", "uri_too_long",
            "the request line is longer than the server reads (8 KB): shorten the address"),
    "400": ("400 Bad Request", "malformed_request",
            "the request is not well-formed HTTP (request line, headers or body framing)"),
}


def refused_unread(status: str) -> bytes:
    """A whole HTTP response, JSON error and all, for a request refused before it was read."""
    line, code, message = _REFUSED_UNREAD.get(status, _REFUSED_UNREAD["400"])
    body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
    return (f"HTTP/1.1 {line}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Handler(WebSocketHandler):
    """geventwebsocket's handler, with JSON answers for requests refused unread."""

    def handle_one_request(self):
        result = super().handle_one_request()
        if isinstance(result, tuple):  # (status, whole response): refused unread
            return result[0], refused_unread(result[0])
        return result


def attach_live_and_clock(app: Flask) -> None:
    """What every server process runs beside its requests, `griddispatch serve` and each
    gunicorn worker alike: live push and the SLA clock (a database lock lets one clock act).
    One function for both, so that neither can again go without the clock."""
    # Imported here: the gunicorn master imports this module before its workers patch gevent.
    from dispatch.live import attach
    from dispatch.sla.worker import start_sla_worker

    attach(app)
    start_sla_worker(app)


def serve(app: Flask, host: str, port: int) -> None:
    """Serve HTTP and websockets on gevent until stopped."""
    listener = socket.create_server((host, port), reuse_port=False, backlog=1024)
    # Replies go out as headers then body; without TCP_NODELAY a kept-alive connection
    # waits ~40 ms on the delayed ACK for every request. Accepted sockets inherit it.
    # (gunicorn sets it on its listeners too.)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pywsgi.WSGIServer(listener, app, handler_class=Handler, log=None).serve_forever()
