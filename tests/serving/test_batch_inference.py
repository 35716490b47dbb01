"""`python -m personalize_torch.batch`: Personalize batch-inference JSON lines in and out."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import SMALL_DEMO, compose_train_config

from personalize_torch.batch import main
from personalize_torch.solution_version import load_solution_version

REPO = Path(__file__).resolve().parents[2]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batch_job_scores_good_lines_and_reports_bad_ones(trained_solution, tmp_path):
    solution = trained_solution["solution"]
    sv = load_solution_version(solution)
    known = sv.user_vocab.ids[0]
    src = write_lines(tmp_path / "in.jsonl", [json.dumps({"userId": known}), "{not json", "",
                                              json.dumps({"userID": "x"}), json.dumps({"userId": "new-user"})])
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
    assert no_user["output"] is None and "userId or itemId" in no_user["error"]
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


@pytest.fixture(scope="module")
def sims_solution(tmp_path_factory) -> str:
    """SIMS trained on small demo data through training.train (the train.py path)."""
    from personalize_torch.training import train

    cfg = compose_train_config(SMALL_DEMO + ["recipe=sims", "logger=none"], tmp_path_factory.mktemp("sims"))
    return train(cfg)["solution"]


def run_lines(solution: str, tmp_path: Path, lines: list[dict | str], *extra: str) -> list[dict]:
    src = write_lines(tmp_path / "in.jsonl", [x if isinstance(x, str) else json.dumps(x) for x in lines])
    out = tmp_path / "out.jsonl"
    main(["--solution", solution, "--input", str(src), "--output", str(out), *extra])
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_related_items_lines_get_the_items_neighbours(sims_solution, tmp_path):
    sv = load_solution_version(sims_solution)
    recipe = sv.recipe
    with_neighbours = (recipe.neighbor_idx > 0).sum(1)
    item_idx = int(with_neighbours.argmax())                      # an item with the longest neighbour list
    item = sv.item_vocab.to_id([item_idx])[0]
    n = int(with_neighbours[item_idx])
    user = sv.user_vocab.ids[0]
    user_items = set(sv.item_vocab.to_id(sv.histories.items_of(sv.history_rows([user])[0])))
    results = run_lines(sims_solution, tmp_path, [
        {"itemId": item}, {"userId": user}, {"itemId": "never-seen-item"}, {}, {"itemId": 105},
        {"itemId": item, "userId": user}, {"userId": "new-user"}], "--num-results", "10")
    related, by_user, unknown, neither, not_string, item_and_user, cold = results
    assert related["input"] == {"itemId": item} and related["error"] is None
    expected = sv.item_vocab.to_id(recipe.neighbor_idx[item_idx, :min(n, 10)].long().numpy())
    recommended = related["output"]["recommendedItems"]
    assert len(recommended) == 10 and recommended[:len(expected)] == list(expected)
    assert item not in recommended
    assert related["output"]["scores"] == sorted(related["output"]["scores"], reverse=True)
    # userId lines are unchanged: the user's own items are left out.
    assert by_user["error"] is None and not user_items & set(by_user["output"]["recommendedItems"])
    # An unknown item gets the popular items, as a user with no history does.
    assert unknown["error"] is None and unknown["output"] == cold["output"]
    assert neither["output"] is None and "userId or itemId is required" in neither["error"]
    assert not_string["output"] is None and "itemId must be a non-empty string" in not_string["error"]
    # itemId with a userId: related items, minus the user's items and the item itself.
    got = item_and_user["output"]["recommendedItems"]
    assert item_and_user["error"] is None and not (user_items | {item}) & set(got)


def test_related_items_from_a_recipe_that_is_not_item_based(trained_solution, tmp_path):
    """Popularity-Count answers itemId too: a history of just that item, so the popular items minus it."""
    solution = trained_solution["solution"]
    cold, = run_lines(solution, tmp_path, [{"userId": "new-user"}], "--num-results", "5")
    top = cold["output"]["recommendedItems"][0]
    related, = run_lines(solution, tmp_path, [{"itemId": top}], "--num-results", "5")
    assert related["output"]["recommendedItems"][:4] == cold["output"]["recommendedItems"][1:]
    assert top not in related["output"]["recommendedItems"]
