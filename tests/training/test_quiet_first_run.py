"""A newcomer's first commands print what matters (a line saying where training runs, the metrics report,
where the solution version went) and nothing that looks like a mistake: no Lightning tips or device banner,
no warnings, no deprecations. The commands run in subprocesses because pytest's own warning filters
(pyproject.toml) would hide what a user sees.

The training runs see 16 CPUs (a sitecustomize on PYTHONPATH), as a GPU machine would: Lightning only
suggests data loader workers on machines with more than 2 cores. Three subprocess runs, about 5-10 s each.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOISE = re.compile(
    r"warn|deprecat|\btips?\b|💡|Traceback"
    r"|\.py:\d+: "                                     # where a warning was raised (Lightning prints no category)
    r"|\[(pytorch_lightning|lightning_fabric)[.\]]"    # a log line of Lightning's, in the command's log format
    r"|GPU available|TPU available|Seed set|no optimizer|weights_only|Trainer.fit. stopped"
    r"|estimate number of stepping batches|many workers|logging interval", re.IGNORECASE)


def _run(tmp_path: Path, args: list[str], sitecustomize: str) -> subprocess.CompletedProcess:
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(sitecustomize)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def _train(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    many_cpus = "import os\nos.sched_getaffinity = lambda pid: set(range(16))\nos.cpu_count = lambda: 16\n"
    return _run(tmp_path, [f"output_dir={tmp_path / 'solution'}", f"hydra.run.dir={tmp_path / 'run'}",
                           "trainer.enable_progress_bar=false", *overrides], many_cpus)


def _noise(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if NOISE.search(line)]


def test_the_default_popularity_count_run_is_quiet(tmp_path):
    proc = _train(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _noise(proc) == []
    assert "training popularity_count on " in proc.stdout + proc.stderr   # where it runs: cpu, or the GPU
    assert "normalized_discounted_cumulative_gain_at_10" in proc.stdout
    assert f"Solution version saved to {tmp_path / 'solution'}" in proc.stdout
    assert proc.stdout.count("saved to") == 1


def test_a_user_personalization_epoch_is_quiet(tmp_path):
    """With the TensorBoard logger and the embedding projector (the defaults)."""
    proc = _train(tmp_path, "recipe=user_personalization", "data.demo.n_users=300", "data.demo.n_items=120",
                  "trainer.max_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _noise(proc) == []
    lines = (proc.stdout + proc.stderr).splitlines()
    assert any("training user_personalization on " in line for line in lines)
    # one line for the epoch it trained; the validation after fitting is the report's
    assert sum(" val/ndcg_at_10 " in line for line in lines) == 1
    assert "normalized_discounted_cumulative_gain_at_10" in proc.stdout
    assert (tmp_path / "solution" / "solution.json").exists()


def test_a_sweep_without_optuna_says_which_extra_to_install(tmp_path):
    no_optuna = "import sys\nsys.modules['optuna'] = None   # `import optuna` raises ImportError\n"
    proc = _run(tmp_path, ["-m", "hparams_search=sims", f"hydra.sweep.dir={tmp_path / 'sweep'}"], no_optuna)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [(
        'error: hyperparameter search needs Optuna: pip install "personalize-torch[hpo]" '
        '(in a clone of the repository: pip install -e ".[hpo]")')]
