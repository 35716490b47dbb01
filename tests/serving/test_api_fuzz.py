"""The served OpenAPI document, fuzzed with schemathesis (bench/api_fuzz.py, a few examples per operation here; the
longer run is `python bench/api_fuzz.py`): no 5xx, every answer as the document states it, every error in AWS's
shape."""

import json
import subprocess
import sys

import pytest

from personalize_torch.filters import Filter
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor
from tests.conftest import REPO, serving

pytest.importorskip("schemathesis")


def test_fuzzed_api_answers_as_its_document_says(trained_solution, tmp_path):
    deploy_root = tmp_path / "deploy"
    deploy_root.mkdir()
    app = create_app({"shop": Predictor.from_dir(trained_solution["solution"])},
                     filters={"exclude_ids": Filter.parse("EXCLUDE ItemID WHERE Items.ITEM_ID IN ($IDS)")},
                     deploy_root=deploy_root)
    with serving(app) as url:
        done = subprocess.run([sys.executable, "bench/api_fuzz.py", "--url", url, "--examples", "8", "--seed", "1",
                               "--phases", "coverage,fuzzing,stateful"], cwd=REPO, capture_output=True, text=True,
                              timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status_5xx"] == 0 and summary["requests"] >= 500, summary   # every operation, many times
    assert {400, 404, 405} <= set(map(int, summary["by_status"])), summary         # errors were tried, too
