"""SIGTERM while serving (`serve.py`, one process and two workers): the server stops accepting connections, the
requests in flight finish and are answered 200, every acknowledged event is stored, the process exits with 0 and
the port is free right after."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from personalize_torch.serving.events.event_store import EventStore
from personalize_torch.serving.http.worker_processes import wait_until_serving
from tests.conftest import REPO, free_port

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/default"
SENT_BEFORE_SIGNAL = 12   # bytes of each body sent before SIGTERM: requests begun, not yet complete


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body


class SlowRequest:
    """A POST on its own connection whose body is sent in two parts: begun now, completed by `finish()`."""

    def __init__(self, port: int, path: str, payload: dict):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n")
        self.worker = json.loads(read_response(self.sock)[1])["worker"]   # which worker holds the connection
        self.body = json.dumps(payload).encode()
        self.sock.sendall(b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d"
                          b"\r\n\r\n%s" % (path.encode(), len(self.body), self.body[:SENT_BEFORE_SIGNAL]))

    def finish(self) -> tuple[int, bytes]:
        self.sock.sendall(self.body[SENT_BEFORE_SIGNAL:])
        try:
            return read_response(self.sock)
        finally:
            self.sock.close()


def refuses_connections(port: int, within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need fork()")
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_finishes_requests_in_flight_keeps_their_events_and_frees_the_port(trained_solution, tmp_path,
                                                                                   workers):
    port = free_port()
    events_db = tmp_path / "events.sqlite"
    server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), f"solution={trained_solution['solution']}",
                               f"port={port}", f"events_db={events_db}", f"workers={workers}", "access_log=false",
                               "log_level=warning", f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO)
    try:
        assert wait_until_serving(f"http://127.0.0.1:{port}", timeout=60)
        requests, events = [], []
        for n in range(8 * workers):
            if n % 2:
                requests.append(SlowRequest(port, "/recommendations",
                                            {"campaignArn": ARN, "userId": f"user-{n}", "numResults": 5}))
            else:
                events.append(f"event-{n}")
                requests.append(SlowRequest(port, "/events", {
                    "trackingId": "t", "userId": f"user-{n}", "sessionId": f"s-{n}",
                    "eventList": [{"eventType": "click", "itemId": "i", "eventId": events[-1], "sentAt": 1.7e9}]}))
        assert {r.worker for r in requests} == set(range(workers))   # requests in flight in every worker

        server.send_signal(signal.SIGTERM)
        assert refuses_connections(port)            # stopped accepting, while its requests are still in flight
        assert server.poll() is None
        answers = [r.finish() for r in requests]
        assert [status for status, _ in answers] == [200] * len(requests)
        assert all(len(json.loads(body)["itemList"]) == 5 for status, body in answers[1::2])
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    with socket.socket() as again:                   # the port is free: a new server could listen on it now
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()
    with EventStore(events_db) as store:
        assert {e.event_id for e in store.events()} == set(events)
