"""Hyperparameter search pieces that know nothing about Hydra: search-space specs -> Optuna distributions,
the objective read from a training result, and the best trial's solution version saved with every trial.

A search-space spec is a small dict, from a `configs/hparams_search/*.yaml` file, a command-line sweep
(`recipe.dropout='interval(0.1,0.5)'`) or a Personalize `hpoConfig` (`solution_config.read_hpo_config`):

    {"type": "int", "low": 32, "high": 256}                 # both ends included
    {"type": "float", "low": 1e-4, "high": 1e-2, "log": true}
    {"type": "categorical", "choices": [true, false]}

The Hydra side (launching trials, collecting their results) is the sweeper plugin in
`hydra_plugins/personalize_sweepers`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from personalize_torch.errors import InputError
from personalize_torch.metrics.ranking_metrics import PERSONALIZE_NAMES
from personalize_torch.solution_manifest import write_manifest

DEFAULT_OBJECTIVE = "val/ndcg_at_10"
DIRECTIONS = ("maximize", "minimize")
HPO_JSON = "hpo.json"
AUTOML_JSON = "automl.json"
_OUR_METRIC = re.compile(r"^((ndcg|precision|recall|hit_rate|mrr)_at_\d+|mrr|coverage|"
                         r"(hits|recall)_at_\d+_percent)$")
_FROM_PERSONALIZE = {v: k for k, v in PERSONALIZE_NAMES.items()}


def metric_key(objective: str, column: str = "objective") -> tuple[str, str]:
    """`val/ndcg_at_10`, `ndcg_at_10` or Personalize's `normalized_discounted_cumulative_gain_at_10`
    (any case) -> ("val", "ndcg_at_10"). No stage means validation: the test split never picks a model."""
    stage, _, name = str(objective).strip().lower().rpartition("/")
    stage = stage or "val"
    name = _FROM_PERSONALIZE.get(name, name)
    if stage not in ("val", "test") or not _OUR_METRIC.match(name):
        raise InputError(f"unknown metric {objective!r}; expected e.g. val/ndcg_at_10, precision_at_25 or "
                         f"normalized_discounted_cumulative_gain_at_10", column=column)
    return stage, name


def objective_value(result: dict, objective: str) -> float:
    """The objective's value in a `training.train` result ({"metrics": {"val": {...}, "test": {...}}})."""
    stage, name = metric_key(objective)
    metrics = result.get("metrics", {}).get(stage, {})
    if name not in metrics:
        raise InputError(f"the training result has no {stage}/{name}; it has "
                         f"{', '.join(sorted(metrics)) or 'no metrics'} for {stage}", column="objective")
    return float(metrics[name])


def check_direction(direction: str, column: str = "direction") -> str:
    d = str(direction).strip().lower()
    if d not in DIRECTIONS:
        raise InputError(f"expected maximize or minimize, got {direction!r}", column=column)
    return d


def distribution(name: str, spec: dict):
    """The Optuna distribution of one spec; a bad spec is an InputError naming the parameter."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind = spec.get("type")
    try:
        if kind == "categorical":
            choices = list(spec["choices"])
            if not choices:
                raise ValueError("no choices")
            return CategoricalDistribution(choices)
        low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
        if low > high:
            raise ValueError(f"low {low} > high {high}")
        if kind == "int":
            return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
        if kind == "float":
            return FloatDistribution(float(low), float(high), log=log, step=float(step) if step else None)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"bad search range {spec!r}: {err}", column=name) from None
    raise InputError(f"search range type must be int, float or categorical, got {kind!r}", column=name)


def override_value(value) -> str:
    """A sampled value as a Hydra command-line override value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if re.fullmatch(r"[\w.\-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def copy_solution(src: str | Path, dst: str | Path, extra: dict) -> Path:
    """Copy a solution version directory to `dst` (via a temporary name, then rename) and add `extra`
    to its solution.json (e.g. tunedHPOParams, autoMLResult)."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    info_path = tmp / "solution.json"
    info = json.loads(info_path.read_text())
    info.update(extra)
    info_path.write_text(json.dumps(info, indent=2, default=str))
    write_manifest(tmp)     # solution.json changed: its checksum with it
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return dst


def write_json(path: str | Path, obj: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.rename(path)


def best_trial(trials: list[dict], direction: str) -> dict | None:
    """The completed trial with the best value (the first of equals)."""
    done = [t for t in trials if t.get("state") == "COMPLETE"]
    if not done:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    return max(done, key=lambda t: (sign * t["value"], -t["number"]))


def tuned_hpo_params(params: dict) -> dict:
    """Personalize's DescribeSolutionVersion `tunedHPOParams`: the chosen values, as strings, under the
    recipe's hyperparameter names (`recipe.hidden_dimension` -> `hidden_dimension`)."""
    out = {}
    for key, value in params.items():
        name = key.lstrip("+").removeprefix("recipe.")
        out[name] = override_value(value).strip("'") if not isinstance(value, str) else value
    return {"algorithmHyperParameters": out}
