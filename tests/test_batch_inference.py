"""`python -m personalize_torch.batch`: Personalize batch-inference JSON lines in and out."""

import json
import subprocess
import sys
from pathlib import Path

from personalize_torch.batch import main
from personalize_torch.solution_version import load_solution_version

REPO = Path(__file__).resolve().parents[1]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batch_job_scores_good_lines_and_reports_bad_ones(trained_solution, tmp_path):
    solution = trained_solution["solution"]
    sv = load_solution_version(solution)
    known = sv.user_vocab.ids[0]
    src = write_lines(tmp_path / "in.jsonl", [json.dumps({"userId": known}), "{not json", "",
                                              json.dumps({"itemId": "x"}), json.dumps({"userId": "new-user"})])
    out = tmp_path / "out" / "out.jsonl"
    main(["--solution", solution, "--input", str(src), "--output", str(out), "--num-results", "7"])
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(results) == 4  # the blank line is skipped
    good, bad_json, no_user, cold = results
    assert good["input"] == {"userId": known} and good["error"] is None
    items = good["output"]["recommendedItems"]
    assert len(items) == 7 and len(good["output"]["scores"]) == 7
    seen = set(sv.item_vocab.to_id(sv.histories.items_of(sv.history_rows([known])[0])))
    assert not seen & set(items)
    assert bad_json["output"] is None and "invalid JSON" in bad_json["error"] and bad_json["input"] == "{not json"
    assert no_user["output"] is None and "userId" in no_user["error"]
    assert cold["error"] is None and len(cold["output"]["recommendedItems"]) == 7


def test_include_seen_keeps_history_items(trained_solution, tmp_path):
    solution = trained_solution["solution"]
    sv = load_solution_version(solution)
    n_items = len(sv.item_vocab)
    user = sv.user_vocab.ids[0]
    src = write_lines(tmp_path / "in.jsonl", [json.dumps({"userId": user})])
    out = tmp_path / "out.jsonl"
    main(["--solution", solution, "--input", str(src), "--output", str(out), "--num-results", "500",
          "--include-seen"])
    assert len(json.loads(out.read_text())["output"]["recommendedItems"]) == n_items


def test_cli_contract_and_clear_errors(trained_solution, tmp_path):
    solution = trained_solution["solution"]
    src = write_lines(tmp_path / "in.jsonl", [json.dumps({"userId": "u1"})])
    cmd = [sys.executable, "-m", "personalize_torch.batch", "--solution", solution, "--input", str(src)]
    ok = subprocess.run(cmd + ["--output", str(tmp_path / "o.jsonl"), "--num-results", "3"], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads((tmp_path / "o.jsonl").read_text())["output"]["recommendedItems"]) == 3
    bad = subprocess.run([sys.executable, "-m", "personalize_torch.batch", "--solution", str(tmp_path),
                          "--input", str(src), "--output", str(tmp_path / "x.jsonl")], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "not a solution version" in bad.stderr and "Traceback" not in bad.stderr
