"""The gunicorn worker class for several server processes (see dispatch.wsgi):

    gunicorn -k dispatch.gunicorn_worker.Worker -w 1 -b 127.0.0.1:5001 dispatch.wsgi:app

geventwebsocket's worker, with the JSON answers of `griddispatch serve` for requests gevent
refuses unread. Only gunicorn imports this module; the rest of the app does not need gunicorn.
"""

from geventwebsocket.gunicorn.workers import GeventWebSocketWorker

from dispatch.server import Handler


class Worker(GeventWebSocketWorker):
    wsgi_handler = Handler
