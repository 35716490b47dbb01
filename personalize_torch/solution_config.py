"""Read an Amazon Personalize CreateSolution request (or just its `solutionConfig`) as settings here.

    {"recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization",
     "eventType": "click",
     "solutionConfig": {"eventValueThreshold": "0.5",
                        "algorithmHyperParameters": {"hidden_dimension": "128", "bptt": "32"}}}

gives recipe `user_personalization`, event selection and the recipe hyperparameters (Personalize's
string values are converted by the recipe; the history-length percentiles, which Personalize puts in
`featureTransformationParameters`, are read from there too, for recipes that have them). `performHPO` +
`solutionConfig.hpoConfig` and `performAutoML` + `solutionConfig.autoMLConfig` are read here too, and run
by the sweeps:

    python train.py -m hparams_search=personalize solution_config=hpo.json   # hpoConfig's ranges
    python train.py -m automl=default solution_config=automl.json           # autoMLConfig.recipeList
                                                 # (with performHPO too: then the winner is tuned)
"""

from __future__ import annotations

from pathlib import Path

from personalize_torch.errors import InputError, read_json_file


# Personalize recipe names that are not our config name with `-` for `_`.
_ARN_NAMES = {"hrnn_metadata": "hrnn_meta"}
RECIPE_ARN_PREFIX = "arn:aws:personalize:::recipe/aws-"


def recipe_name_from_arn(arn: str) -> str:
    """`arn:aws:personalize:::recipe/aws-user-personalization` -> `user_personalization`."""
    name = arn.rsplit("/", 1)[-1]
    name = name.removeprefix("aws-").replace("-", "_")
    return _ARN_NAMES.get(name, name)


def recipe_arn(name: str) -> str:
    """`hrnn_meta` -> `arn:aws:personalize:::recipe/aws-hrnn-metadata` (the inverse of recipe_name_from_arn)."""
    arn_name = {v: k for k, v in _ARN_NAMES.items()}.get(name, name)
    return RECIPE_ARN_PREFIX + arn_name.replace("_", "-")


def read_solution_config(path: str | Path) -> dict:
    """{"recipe": name or None, "event_type", "event_value_threshold", "hyperparameters": {...}}."""
    path = Path(path)
    obj = read_json_file(path, "solution config")
    if not isinstance(obj, dict):
        raise InputError("expected a JSON object", file=str(path))
    config = obj.get("solutionConfig", obj)
    if not isinstance(config, dict):
        raise InputError("solutionConfig must be an object", file=str(path), column="solutionConfig")
    hyperparameters = config.get("algorithmHyperParameters", {}) or {}
    if not isinstance(hyperparameters, dict):
        raise InputError("algorithmHyperParameters must be an object", file=str(path),
                         column="algorithmHyperParameters")
    featurization = read_featurization(config.get("featureTransformationParameters"), hyperparameters, path)
    threshold = config.get("eventValueThreshold")
    try:
        threshold = float(threshold) if threshold is not None else None
    except ValueError:
        raise InputError(f"eventValueThreshold must be a number, got {threshold!r}", file=str(path),
                         column="eventValueThreshold") from None
    return {
        "recipe": recipe_name_from_arn(obj["recipeArn"]) if "recipeArn" in obj else None,
        "event_type": obj.get("eventType", config.get("eventType")),
        "event_value_threshold": threshold,
        "event_parameters": read_events_config(config["eventsConfig"], path) if config.get("eventsConfig") else None,
        "hyperparameters": dict(hyperparameters),
        "featurization": featurization,
        "perform_hpo": _flag(obj, "performHPO", path),
        "hpo": read_hpo_config(config["hpoConfig"], path) if config.get("hpoConfig") else None,
        "perform_automl": _flag(obj, "performAutoML", path),
        "automl": read_automl_config(config["autoMLConfig"], path) if config.get("autoMLConfig") else None,
    }


# featureTransformationParameters read here: the history-length percentiles (Personalize lists them as
# featurization hyperparameters, and its DescribeSolution spells them `*_hist_length_percentile` too). Other
# keys (cold_start_max_duration, ...) have no counterpart and are left out, as Personalize's own recipes
# ignore the ones that do not apply to them.
FEATURIZATION_NAMES = {name: name for name in ("min_user_history_length_percentile",
                                               "max_user_history_length_percentile")}
FEATURIZATION_NAMES.update(min_hist_length_percentile="min_user_history_length_percentile",
                           max_hist_length_percentile="max_user_history_length_percentile")


def read_featurization(params, hyperparameters: dict, path: Path) -> dict:
    """solutionConfig.featureTransformationParameters -> {recipe hyperparameter: value} for the keys read
    (FEATURIZATION_NAMES); a value that contradicts algorithmHyperParameters is an error."""
    params = params or {}
    if not isinstance(params, dict):
        raise InputError("featureTransformationParameters must be an object", file=str(path),
                         column="featureTransformationParameters")
    out = {}
    for key, value in params.items():
        name = FEATURIZATION_NAMES.get(key)
        if name is None:
            continue
        if name in hyperparameters and str(hyperparameters[name]) != str(value):
            raise InputError(f"{key} is {value!r} here but {name} is {hyperparameters[name]!r} in "
                             "algorithmHyperParameters", file=str(path), column=f"featureTransformationParameters.{key}")
        out[name] = value
    return out


def read_events_config(events: dict, path: Path) -> list[dict]:
    """solutionConfig.eventsConfig: {"eventParametersList": [{"eventType": "click", "eventValueThreshold": 0.1,
    "weight": 0.3}, ...]} -> [{"event_type", "event_value_threshold", "weight"}] (None where not given):
    training uses events of the listed types only, each with its threshold, and weights the loss of
    predicting each type (User-Personalization's event_type_weights)."""
    items = events.get("eventParametersList") if isinstance(events, dict) else None
    if not isinstance(items, list) or not items:
        raise InputError("eventsConfig needs a non-empty eventParametersList", file=str(path), column="eventsConfig")
    out = []
    for i, item in enumerate(items):
        where = f"eventsConfig.eventParametersList[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("eventType"), str) or not item["eventType"]:
            raise InputError("each entry needs an eventType", file=str(path), column=where)
        threshold, weight = item.get("eventValueThreshold"), item.get("weight")
        out.append({"event_type": item["eventType"],
                    "event_value_threshold": _number(threshold, float, path, f"{where}.eventValueThreshold")
                    if threshold is not None else None,
                    "weight": _number(weight, float, path, f"{where}.weight") if weight is not None else None})
    if len({p["event_type"] for p in out}) < len(out):
        raise InputError("an eventType is listed twice", file=str(path), column="eventsConfig.eventParametersList")
    return out


def sweep_command(path: str | Path) -> tuple[str, str] | None:
    """(field, command) when the CreateSolution JSON asks for a search (performAutoML / performHPO), which
    one training cannot do; None otherwise. train.py refuses such a file outside a sweep."""
    sc = read_solution_config(path)
    if sc["perform_automl"]:
        return "performAutoML", f"python train.py -m automl=default solution_config={path}"
    if sc["perform_hpo"]:
        return "performHPO", f"python train.py -m hparams_search=personalize solution_config={path}"
    return None


def _flag(obj: dict, key: str, path: Path) -> bool:
    value = obj.get(key, False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise InputError(f"{key} must be true or false, got {value!r}", file=str(path), column=key)
    return value


def _number(value, kind: type, path: Path, column: str):
    """Personalize sends range ends and job counts as strings or numbers."""
    try:
        number = float(value)
        if kind is int:
            if number != int(number):
                raise ValueError
            return int(number)
        return number
    except (TypeError, ValueError):
        raise InputError(f"expected {'an integer' if kind is int else 'a number'}, got {value!r}",
                         file=str(path), column=column) from None


# A continuous range this wide (max / min, both positive) is sampled on a log scale, as SageMaker's
# "Auto" scaling does: a learning rate of 1e-4..1e-1 is searched per decade, not mostly near 1e-1.
LOG_SCALE_RATIO = 100.0


def read_hpo_config(hpo: dict, path: str | Path = "solution config") -> dict:
    """`solutionConfig.hpoConfig` -> {"params": {name: search-range spec (personalize_torch.hpo)},
    "objective": metric name or None, "direction": "maximize"/"minimize", "n_trials", "n_jobs"}.

        {"hpoObjective": {"type": "Maximize", "metricName": "normalized_discounted_cumulative_gain_at_10"},
         "hpoResourceConfig": {"maxNumberOfTrainingJobs": "16", "maxParallelTrainingJobs": "4"},
         "algorithmHyperParameterRanges": {
             "integerHyperParameterRanges": [{"name": "hidden_dimension", "minValue": 32, "maxValue": 256}],
             "continuousHyperParameterRanges": [{"name": "learning_rate", "minValue": 0.0001, "maxValue": 0.01}],
             "categoricalHyperParameterRanges": [{"name": "recency_mask", "values": ["true", "false"]}]}}
    """
    path = Path(path)
    where = "hpoConfig"
    if not isinstance(hpo, dict):
        raise InputError("hpoConfig must be an object", file=str(path), column=where)
    ranges = hpo.get("algorithmHyperParameterRanges") or {}
    if not isinstance(ranges, dict):
        raise InputError("algorithmHyperParameterRanges must be an object", file=str(path),
                         column=f"{where}.algorithmHyperParameterRanges")
    params: dict[str, dict] = {}
    for key, kind in (("integerHyperParameterRanges", "int"), ("continuousHyperParameterRanges", "float"),
                      ("categoricalHyperParameterRanges", "categorical")):
        entries = ranges.get(key) or []
        column = f"{where}.algorithmHyperParameterRanges.{key}"
        if not isinstance(entries, list):
            raise InputError(f"{key} must be a list", file=str(path), column=column)
        for i, entry in enumerate(entries):
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name:
                raise InputError(f"entry {i} needs a name", file=str(path), column=column)
            column_name = f"{column}.{name}"
            if name in params:
                raise InputError(f"{name} has more than one range", file=str(path), column=column_name)
            if kind == "categorical":
                values = entry.get("values")
                if not isinstance(values, list) or not values:
                    raise InputError("values must be a non-empty list", file=str(path), column=column_name)
                params[name] = {"type": "categorical", "choices": list(values)}
                continue
            low = _number(entry.get("minValue"), int if kind == "int" else float, path, f"{column_name}.minValue")
            high = _number(entry.get("maxValue"), int if kind == "int" else float, path, f"{column_name}.maxValue")
            if low > high:
                raise InputError(f"minValue {low} is above maxValue {high}", file=str(path), column=column_name)
            spec = {"type": kind, "low": low, "high": high}
            if kind == "float" and low > 0 and high / low >= LOG_SCALE_RATIO:
                spec["log"] = True
            params[name] = spec
    objective = hpo.get("hpoObjective") or {}
    direction = str(objective.get("type", "Maximize")).lower()
    if direction not in ("maximize", "minimize"):
        raise InputError(f"type must be Maximize or Minimize, got {objective.get('type')!r}", file=str(path),
                         column=f"{where}.hpoObjective.type")
    resources = hpo.get("hpoResourceConfig") or {}
    n_trials = resources.get("maxNumberOfTrainingJobs")
    n_jobs = resources.get("maxParallelTrainingJobs")
    column = f"{where}.hpoResourceConfig"
    n_trials = _number(n_trials, int, path, f"{column}.maxNumberOfTrainingJobs") if n_trials is not None else None
    n_jobs = _number(n_jobs, int, path, f"{column}.maxParallelTrainingJobs") if n_jobs is not None else None
    for name, value in (("maxNumberOfTrainingJobs", n_trials), ("maxParallelTrainingJobs", n_jobs)):
        if value is not None and value < 1:
            raise InputError(f"must be at least 1, got {value}", file=str(path), column=f"{column}.{name}")
    return {"params": params, "objective": objective.get("metricName"), "direction": direction,
            "n_trials": n_trials, "n_jobs": n_jobs}


def read_automl_config(automl: dict, path: str | Path = "solution config") -> dict:
    """`solutionConfig.autoMLConfig` ({"metricName": ..., "recipeList": [recipe ARNs]}) ->
    {"objective": metric name or None, "recipes": [recipe names] or None}."""
    path = Path(path)
    if not isinstance(automl, dict):
        raise InputError("autoMLConfig must be an object", file=str(path), column="autoMLConfig")
    recipes = automl.get("recipeList")
    if recipes is not None:
        if not isinstance(recipes, list) or not all(isinstance(r, str) for r in recipes) or not recipes:
            raise InputError("recipeList must be a non-empty list of recipe ARNs", file=str(path),
                             column="autoMLConfig.recipeList")
        recipes = [recipe_name_from_arn(r) for r in recipes]
    return {"objective": automl.get("metricName"), "recipes": recipes}
