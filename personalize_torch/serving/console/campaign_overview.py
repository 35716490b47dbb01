"""What the overview page shows of a served campaign: its solution version (recipe, hyperparameters, metrics)
and the data it was trained on (datasets, row counts, schemas, time range, event types), from solution.json
and the solution version's tables."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from personalize_torch.data import constants as C
from personalize_torch.serving.campaigns import Campaign
from personalize_torch.solution_version import SolutionVersion

SCHEMA_FLAGS = ("categorical", "textual")


def finite(value):
    """`value` (JSON-like) with NaN and infinite floats as None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def item_columns(solution: SolutionVersion) -> list[str]:
    """The Items metadata columns (what GetRecommendations' metadataColumns may ask for)."""
    return [str(c) for c in solution.items.columns if c != C.ITEM_ID]


def _datasets(solution: SolutionVersion) -> list[dict]:
    info = solution.info
    rows = {"Interactions": (info.get("data") or {}).get("n_interactions"), "Items": len(solution.items),
            "Users": len(solution.users) if solution.users is not None else None}
    out = []
    for name, schema in (info.get("schemas") or {}).items():
        fields = [{"name": str(f.get("name")), "type": str(f.get("type")) if not isinstance(f.get("type"), str)
                   else f["type"], "flags": [flag for flag in SCHEMA_FLAGS if f.get(flag)]}
                  for f in schema.get("fields", []) if isinstance(f, dict)]
        out.append({"name": str(name), "rows": rows.get(name), "fields": fields})
    return out


def dataset_group(solution: SolutionVersion) -> dict:
    """The data a solution version was trained on, as `api_models.DatasetGroup`."""
    info = solution.info
    data = info.get("data") or {}
    stamps = solution.histories.timestamp
    vocabularies = info.get("vocabularies") or {}
    contexts = vocabularies.get("context") or {}
    return {"name": data.get("name"), "fingerprint": data.get("fingerprint"), "datasets": _datasets(solution),
            "firstEvent": float(np.min(stamps)) if len(stamps) else None,
            "lastEvent": float(np.max(stamps)) if len(stamps) else None,
            "users": len(solution.histories),
            "eventTypes": [str(t) for t in vocabularies.get("event_type") or []],
            "contextFields": {str(k): [str(v) for v in values] for k, values in contexts.items()},
            "itemColumns": item_columns(solution)}


def campaign_overview(campaign: Campaign) -> dict:
    """A served campaign, as `api_models.CampaignOverview`."""
    solution = campaign.predictor.solution
    info = solution.info
    return finite({"name": campaign.name, "solutionVersion": str(solution.path), "recipe": solution.recipe_name,
                   "created": info.get("created"), "hyperparameters": info.get("hyperparameters") or {},
                   "personalizeMetrics": info.get("personalize_metrics") or {},
                   "settings": asdict(campaign.settings), "datasetGroup": dataset_group(solution)})
