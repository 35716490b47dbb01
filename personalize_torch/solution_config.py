"""Read an Amazon Personalize CreateSolution request (or just its `solutionConfig`) as settings here.

    {"recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization",
     "eventType": "click",
     "solutionConfig": {"eventValueThreshold": "0.5",
                        "algorithmHyperParameters": {"hidden_dimension": "128", "bptt": "32"}}}

gives recipe `user_personalization`, event selection and the recipe hyperparameters (Personalize's
string values are converted by the recipe). `hpoConfig` is read by the HPO sweeps (issue #8).
"""

from __future__ import annotations

from pathlib import Path

from personalize_torch.errors import InputError, read_json_file


def recipe_name_from_arn(arn: str) -> str:
    """`arn:aws:personalize:::recipe/aws-user-personalization` -> `user_personalization`."""
    name = arn.rsplit("/", 1)[-1]
    name = name.removeprefix("aws-")
    return name.replace("-", "_")


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
        "hyperparameters": dict(hyperparameters),
    }
