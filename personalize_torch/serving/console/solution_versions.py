"""The solution versions found under the server's roots, with their offline metrics (the overview's chart).

A bounded walk: each root down to `MAX_DEPTH` directory levels, at most `MAX_DIRECTORIES` directories read and
`MAX_VERSIONS` solution versions reported; hidden directories (a solution version being written) are skipped.
Only solution.json is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from personalize_torch.serving.console.campaign_overview import finite
from personalize_torch.solution_version import SOLUTION_JSON

MAX_DEPTH = 3
MAX_DIRECTORIES = 5000
MAX_VERSIONS = 200


def find_solution_versions(roots: Iterable[Path]) -> list[Path]:
    """Directories holding a solution.json under `roots` (each root itself included), each once."""
    found: dict[Path, None] = {}
    visited = 0
    queue = [(Path(root), 0) for root in roots]
    while queue and visited < MAX_DIRECTORIES and len(found) < MAX_VERSIONS:
        directory, depth = queue.pop(0)
        visited += 1
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if any(e.name == SOLUTION_JSON and e.is_file() for e in entries):
            found.setdefault(directory.resolve())
            continue   # a solution version holds no others
        if depth < MAX_DEPTH:
            queue.extend((Path(e.path), depth + 1) for e in sorted(entries, key=lambda e: e.name)
                         if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    return list(found)


def _text(value) -> str | None:
    return None if value is None else str(value)


def summary(path: Path, campaigns: list[str]) -> dict | None:
    """A solution version as `api_models.SolutionVersionSummary`; None when its solution.json cannot be read."""
    try:
        info = json.loads((path / SOLUTION_JSON).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    metrics = info.get("personalize_metrics")
    data = info.get("data") if isinstance(info.get("data"), dict) else {}
    return finite({"path": str(path), "recipe": _text(info.get("recipe")), "created": _text(info.get("created")),
                   "dataFingerprint": _text(data.get("fingerprint")), "campaigns": campaigns,
                   "metrics": {str(k): float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
                   if isinstance(metrics, dict) else {}})
