"""A Flask app served by aruntime.wsgi in the web tests."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Iterator

from flask import Flask, Response, jsonify, request, stream_with_context

import aruntime

app = Flask(__name__)


@app.get("/hello")
def hello() -> Response:
    return jsonify(path=request.path, script_root=request.script_root,
                   args=request.args.getlist("q"), cookies=request.cookies,
                   thread=threading.current_thread().name)


@app.get("/stream")
def stream() -> Response:
    n = request.args.get("n", 3, type=int)
    delay = request.args.get("delay", 0.2, type=float)

    @stream_with_context
    def chunks() -> Iterator[str]:
        for i in range(n):
            time.sleep(delay)  # blocking: the adapter runs it in a worker thread
            yield f"flask {i} {request.path}\n"

    return Response(chunks(), mimetype="text/plain")


@app.post("/upload")
def upload() -> Response:
    data = request.files["upload"].read()
    return jsonify(name=request.form["name"], size=len(data),
                   sha256=hashlib.sha256(data).hexdigest())


@app.get("/cookies")
def cookies() -> Response:
    response = Response("ok", mimetype="text/plain")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


@app.get("/boom")
def boom() -> Response:
    raise KeyError("boom")


handler = aruntime.wsgi(app)
