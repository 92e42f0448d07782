"""Operations: the Prometheus endpoint and JSON logs."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.testclient import TestClient

from personalize import MemoryStore
from personalize.logs import JsonFormatter, configure_logging
from tests.apps import make_app

KEY = "metrics-api-key-0123456789abcdef"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


def test_metrics_need_a_key_and_count_what_happened() -> None:
    app = make_app(MemoryStore(), api_keys=[KEY])
    client = TestClient(app)
    client.headers["user-agent"] = UA
    client.get("/")
    client.get("/")
    TestClient(app).get("/", headers={"user-agent": "Googlebot/2.1"})
    TestClient(app).get("/", headers={"user-agent": UA, "sec-gpc": "1"})
    prometheus = TestClient(app)  # scraped with curl: a bot, counted as such
    prometheus.headers["user-agent"] = "curl/8.5.0"
    assert prometheus.get("/_personalize/metrics").status_code == 401
    r = prometheus.get("/_personalize/metrics", headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'personalize_requests_total{kind="remembered"} 2.0' in text
    assert 'personalize_requests_total{kind="bot"} 3.0' in text
    assert 'personalize_requests_total{kind="context"} 1.0' in text
    assert 'personalize_profile_cache_total{result="hit"}' in text
    assert 'personalize_profile_writes_total{result="written"} 2.0' in text
    assert "personalize_store_seconds_bucket" in text
    assert "personalize_profile_pending 0.0" in text


def test_public_metrics_option() -> None:
    client = TestClient(make_app(MemoryStore(), metrics_public=True))
    assert client.get("/_personalize/metrics").status_code == 200


def test_json_logs_carry_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(logging.INFO)
    try:
        logging.getLogger("personalize.test").warning("store slow", extra={"ms": 12})
    finally:
        log = logging.getLogger("personalize")
        log.handlers.clear()
        log.propagate = True
        log.setLevel(logging.NOTSET)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    data = json.loads(line)
    assert data["message"] == "store slow" and data["ms"] == 12 and data["level"] == "WARNING"
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), None)
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert "ValueError: bad" in json.loads(JsonFormatter().format(record))["exception"]
