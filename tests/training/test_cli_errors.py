"""`python train.py` on bad and good CSVs: one `error:` line and no traceback, or a saved solution version.

Three subprocess runs in all (each takes about 10 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]


def _train(tmp_path: Path, csv: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "train.py", f"data.interactions={csv}", f"output_dir={tmp_path / 'solution'}",
           f"hydra.run.dir={tmp_path / 'hydra'}", *overrides]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_non_numeric_timestamp_is_one_error_line(tmp_path):
    csv = tmp_path / "bad_timestamp.csv"
    csv.write_text("USER_ID,ITEM_ID,TIMESTAMP\nu1,a,1600000000\nu2,b,1600000060\nu3,c,yesterday\n")
    proc = _train(tmp_path, csv)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert _error_lines(proc) == [
        f"error: {csv}, line 4, column TIMESTAMP: expected a number (long), got 'yesterday'"]
    assert not (tmp_path / "solution").exists()


def test_too_few_interactions_is_one_error_line(tmp_path):
    csv = tmp_path / "few_interactions.csv"
    rows = [f"u{k % 5},i{k % 7},{1600000000 + 60 * k}" for k in range(40)]
    csv.write_text("USER_ID,ITEM_ID,TIMESTAMP\n" + "\n".join(rows) + "\n")
    proc = _train(tmp_path, csv)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert proc.returncode != 0
    lines = _error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert "40 interactions after event selection; at least 1000 are needed" in lines[0]
    assert str(csv) in lines[0]
    assert not (tmp_path / "solution").exists()


def test_good_csv_trains_popularity_count(tmp_path):
    rng = np.random.default_rng(7)
    n, n_users, n_items = 1500, 60, 80
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    df = pd.DataFrame({"USER_ID": [f"user{u}" for u in users], "ITEM_ID": [f"item{i}" for i in items],
                       "TIMESTAMP": 1_600_000_000 + 60 * np.arange(n)})
    assert int((df["USER_ID"].value_counts() >= 2).sum()) >= 25
    csv = tmp_path / "good.csv"
    df.to_csv(csv, index=False)
    proc = _train(tmp_path, csv, "recipe=popularity_count")
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _error_lines(proc) == []
    solution = tmp_path / "solution" / "solution.json"
    assert solution.is_file()
    info = json.loads(solution.read_text())
    assert info["recipe"] == "popularity_count"
    assert info["data"]["n_interactions"] == n
    assert info["data"]["n_users"] == df["USER_ID"].nunique()
    assert info["data"]["n_items"] == df["ITEM_ID"].nunique()
