"""Benchmarks: aruntime against awslambdaric 4.2.2 and a bare-socket floor. See README.md here."""
