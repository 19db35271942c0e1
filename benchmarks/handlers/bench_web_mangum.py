"""Mangum serving the benchmark app, run by awslambdaric (buffered, lifespan per invocation)."""

from bench_web_app import app
from mangum import Mangum

handler = Mangum(app, lifespan="auto")
