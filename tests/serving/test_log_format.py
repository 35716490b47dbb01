"""`log_format=json`: every line the server and training write is one JSON object (timestamp, level, logger,
message; the access log's request fields), with no user ids, item ids or keys; `log_format=text` keeps the
text lines, the access log's with a timestamp and a request id."""

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys

import httpx

from personalize_torch.log_format import formatter, structured_handler
from personalize_torch.serving.http.worker_processes import wait_until_serving
from tests.conftest import REPO, SMALL_DEMO, free_port

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/default"
USER, ITEM, KEY = "user-7f3a9c", "item-5e2b1d", "key-c0ffee42"


def json_lines(text: str) -> list[dict]:
    """Every non-empty line parsed (a line that is not JSON fails the test, naming it)."""
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON line: {line!r}") from None
    return out


def record(message: str, **fields) -> logging.LogRecord:
    return logging.LogRecord("personalize_torch.access", logging.INFO, __file__, 1, message, (), None) \
        if not fields else logging.makeLogRecord({"name": "personalize_torch.access", "levelno": logging.INFO,
                                                  "levelname": "INFO", "msg": message, "fields": fields})


def test_the_formatters():
    line = json.loads(formatter("json").format(record("GET /ping 200", requestId="r1", status=200)))
    assert list(line)[:4] == ["timestamp", "level", "logger", "message"] and ISO_UTC.match(line["timestamp"])
    assert line["level"] == "INFO" and line["logger"] == "personalize_torch.access" and line["requestId"] == "r1"
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %d", (3,), sys.exc_info())
    line = json.loads(formatter("json").format(failed))
    assert line["message"] == "failed 3" and "ValueError: boom" in line["exception"]
    # text: Hydra's format for the application's loggers; the access log one JSON object, timestamp first
    assert re.match(r"^\[\d{4}-.*\]\[personalize_torch.access\]\[INFO\] - hello$", formatter("text").format(
        record("hello")))
    handler = structured_handler("text")
    handler.setStream(stream := io.StringIO())
    handler.emit(record("POST /recommendations 200", requestId="r2", status=200))
    access = json.loads(stream.getvalue())
    assert list(access) == ["timestamp", "requestId", "status"] and ISO_UTC.match(access["timestamp"])


def test_the_server_logs_json_lines_without_ids_or_keys(trained_solution, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), f"solution={trained_solution['solution']}",
                               f"port={port}", "events_db=:memory:", f"api_key={KEY}", "log_format=json",
                               f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until_serving(url, timeout=60)
        with httpx.Client(timeout=10, headers={"x-api-key": KEY}) as c:
            answer = c.post(f"{url}/recommendations", json={"campaignArn": ARN, "userId": USER, "numResults": 3})
            assert answer.status_code == 200
            event = {"eventType": "click", "itemId": ITEM, "sentAt": 1700000000}
            assert c.post(f"{url}/events", json={"trackingId": "t", "sessionId": "s", "userId": USER,
                                                 "eventList": [event]}).status_code == 200
            assert c.post(f"{url}/personalize-ranking", json={"campaignArn": ARN, "userId": USER,
                                                              "inputList": [ITEM]}).status_code == 200
            assert c.post(f"{url}/recommendations", json={"userId": USER}).status_code == 400
            assert c.get(f"{url}/metrics", headers={"x-api-key": "wrong-" + KEY}).status_code == 403
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=60)
    lines = json_lines(stderr)
    assert stdout.strip() == ""
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= set(line) and ISO_UTC.match(line["timestamp"])
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    access = [line for line in lines if line["logger"] == "personalize_torch.access"]
    by_operation = {line["operation"]: line for line in access}
    assert {"Ping", "GetRecommendations", "PutEvents", "GetPersonalizedRanking", "Metrics"} <= set(by_operation)
    assert len({line["requestId"] for line in access}) == len(access)
    answered, refused = [line for line in access if line["operation"] == "GetRecommendations"]
    assert answered["recommendationId"] == answer.json()["recommendationId"]
    assert answered["requestId"] == answer.headers["x-amzn-RequestId"]
    assert answered["campaign"] == "default" and answered["status"] == 200 and answered["latency_ms"] > 0
    assert refused["status"] == 400 and refused["error"] == "InvalidInputException"
    assert "recommendationId" not in refused and "recommendationId" not in by_operation["PutEvents"]
    assert by_operation["GetPersonalizedRanking"]["recommendationId"].startswith("RID-")
    assert by_operation["Metrics"]["status"] == 403 and by_operation["Metrics"]["error"] == "UnrecognizedClientException"
    for secret in (USER, ITEM, KEY):
        assert secret not in stderr + stdout


def test_training_logs_json_lines_once(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "train.py"), *SMALL_DEMO, "logger=none", "log_format=json",
                           f"output_dir={tmp_path / 'solution'}", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = json_lines(done.stderr)   # the progress bar is off: only log lines
    training = [line for line in lines if line["message"].startswith("training popularity_count on ")]
    assert len(training) == 1 and training[0]["logger"] == "personalize_torch.training"
    assert json_lines((tmp_path / "run" / "train.log").read_text()) == lines   # the run's log file, the same lines
    assert "normalized_discounted_cumulative_gain_at_10" in done.stdout        # the report stays on stdout
    wrong = subprocess.run([sys.executable, str(REPO / "train.py"), "log_format=xml",
                            f"hydra.run.dir={tmp_path / 'wrong'}"], cwd=REPO, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "HYDRA_FULL_ERROR": "0"}, check=False)
    assert wrong.returncode == 2 and wrong.stderr.strip() == "error: column log_format: must be one of text, json, " \
                                                            "got 'xml'"
