"""aruntime.asgi serving the benchmark app (payload 2.0: streamed)."""

import aruntime
from bench_web_app import app

handler = aruntime.asgi(app)
