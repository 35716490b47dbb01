"""Fuzz the server's HTTP API from its own OpenAPI document with schemathesis: every operation the document lists
(the console's read-only ones included), with valid and invalid requests, boundary values (the coverage phase),
random ones (fuzzing) and chains of calls (stateful).

    python bench/api_fuzz.py [--examples 300] [--seed 1]          # trains a small demo solution, starts serve.py
    python bench/api_fuzz.py --solution <dir>                     # serves that solution version instead
    python bench/api_fuzz.py --url http://127.0.0.1:8080          # fuzzes a server that is already running

Checks (schemathesis' `--checks all`, less `positive_data_acceptance`, plus `aws_error_shape` below): no answer
with status 5xx; every status, content type, header and body is the one the document states for it (error
bodies included); invalid requests are refused; every error answer is in AWS's shape (an `x-amzn-ErrorType`
header naming the same code as the body's `__type`, and a `message`). `positive_data_acceptance` is left out
because a request can match the document and still name what this server does not have (a context field its
solution lacks, a solution directory that does not exist under deploy_root): those are refused with a 4xx in
AWS's shape, as they should be. The exit status is schemathesis': 0 when no check failed.

The test suite runs this with a few examples per operation (tests/serving/test_api_fuzz.py); the default here
is a longer run. `--report-dir` keeps schemathesis' reports (ndjson and JUnit) for a look at each call.
This file is also the schemathesis hooks module that defines `aws_error_shape` (SCHEMATHESIS_HOOKS=api_fuzz).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import schemathesis

REPO = Path(__file__).resolve().parents[1]
EXCLUDED_CHECKS = "positive_data_acceptance"
FILTERS = '{exclude_ids: "EXCLUDE ItemID WHERE Items.ITEM_ID IN ($IDS)"}'


@schemathesis.check
def aws_error_shape(ctx, response, case) -> bool | None:
    """An error answer (status >= 400) has a JSON body {"__type": code, "message": text} and an
    x-amzn-ErrorType header with the same code: what boto3 reads."""
    if response.status_code < 400:
        return None
    declared = response.headers.get("x-amzn-errortype")
    declared = declared[0] if isinstance(declared, list) and declared else declared
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"error {response.status_code} without a JSON body: {response.content[:200]!r}")
    if not isinstance(body, dict) or set(body) != {"__type", "message"} or not isinstance(body["message"], str):
        raise AssertionError(f"error {response.status_code} not in AWS's shape: {str(body)[:200]}")
    if not declared or declared != body["__type"]:
        raise AssertionError(f"x-amzn-ErrorType {declared!r} does not match __type {body['__type']!r}")
    return None


def run_schemathesis(url: str, examples: int, seed: int, phases: str, workdir: Path,
                     report_dir: Path | None = None) -> tuple[int, str]:
    """Run `st run` on `url`'s OpenAPI document in `workdir` (where it keeps its cache); (exit status, output)."""
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json", "--wait-for-schema", "60",
               "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS, "--max-examples", str(examples),
               "--seed", str(seed), "--workers", "1", "--phases", phases, "--no-color"]
    if report_dir is not None:
        command += ["--report", "ndjson,junit", "--report-dir", str(report_dir)]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "api_fuzz",
           "PYTHONPATH": os.pathsep.join([str(REPO / "bench"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def statuses(report_dir: Path) -> Counter:
    """Answers by HTTP status, from schemathesis' ndjson report."""
    counts: Counter = Counter()
    for report in report_dir.glob("*.ndjson"):
        for line in report.read_text().splitlines():
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            for interaction in finished.get("recorder", {}).get("interactions", {}).values():
                response = interaction.get("response")
                if response is not None:
                    counts[response["status_code"]] += 1
    return counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_solution(out: Path) -> str:
    from personalize_torch.training import compose_config, train

    cfg = compose_config(["data.demo.n_users=300", "data.demo.n_items=120", "logger=none",
                          "trainer.enable_progress_bar=false"], output_dir=out / "deploy" / "demo")
    return train(cfg)["solution"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="fuzz this running server instead of starting one")
    p.add_argument("--solution", help="serve this solution version (default: train a small demo one)")
    p.add_argument("--examples", type=int, default=300, help="examples per operation (fuzzing, stateful)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    p.add_argument("--report-dir", type=Path, help="keep schemathesis' reports here")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        report_dir = args.report_dir or Path(tmp) / "reports"
        server = None
        url = args.url
        if url is None:
            from personalize_torch.serving.http.worker_processes import wait_until_serving

            solution = args.solution or small_solution(Path(tmp))
            root = Path(tmp) / "deploy"
            root.mkdir(exist_ok=True)
            port = free_port()
            server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), f"solution={solution}",
                                       f"port={port}", f"events_db={Path(tmp) / 'events.sqlite'}",
                                       f"deploy_root={root}", f"filters={FILTERS}", "access_log=false",
                                       "log_level=warning"], cwd=REPO)
            url = f"http://127.0.0.1:{port}"
            if not wait_until_serving(url, timeout=120):
                server.kill()
                raise SystemExit(f"serve.py did not answer {url}/ping within 120 s")
        try:
            started = time.perf_counter()
            code, output = run_schemathesis(url, args.examples, args.seed, args.phases, Path(tmp), report_dir)
            seconds = time.perf_counter() - started
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
        print(output[-20000:])
        counts = statuses(report_dir)
        print(json.dumps({"exit_status": code, "seconds": round(seconds, 1), "examples": args.examples,
                          "seed": args.seed, "phases": args.phases, "requests": sum(counts.values()),
                          "by_status": dict(sorted(counts.items())),
                          "status_5xx": sum(n for s, n in counts.items() if s >= 500)}))
    sys.exit(code)


if __name__ == "__main__":
    main()
