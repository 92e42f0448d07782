"""Throughput/latency harness for personalize (run against a real uvicorn, never in tests)."""
