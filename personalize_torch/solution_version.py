"""Saved models ("solution versions"): one directory, written atomically, read with weights_only=True.

    solution.json          recipe, hyperparameters, data fingerprint, metrics, creation time
    model.ckpt             the Lightning checkpoint (state dict + primitive hyperparameters)
    items.parquet          ITEM_ID of item index 1, 2, ... (index 0 is padding)
    user_histories.parquet USER_ID and each user's items (indices, oldest first) and timestamps

The directory is written under a temporary name and renamed into place, so a crash never leaves
half a model where a model is expected.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from personalize_torch.data import constants as C
from personalize_torch.data.sequences import UserSequences
from personalize_torch.data.vocab import Vocab
from personalize_torch.errors import InputError
from personalize_torch.recipes import RECIPES, Recipe

FORMAT_VERSION = 1
SOLUTION_JSON = "solution.json"
CHECKPOINT = "model.ckpt"
ITEMS_FILE = "items.parquet"
HISTORIES_FILE = "user_histories.parquet"


@dataclass
class SolutionVersion:
    path: Path
    info: dict
    recipe: Recipe
    item_vocab: Vocab
    user_vocab: Vocab
    histories: UserSequences  # rows sorted by user index

    @property
    def recipe_name(self) -> str:
        return self.info["recipe"]

    def history_rows(self, user_ids) -> np.ndarray:
        """Row in `histories` of each user id, -1 for users the solution has never seen."""
        idx = self.user_vocab.to_idx(user_ids)
        rows = np.searchsorted(self.histories.user_idx, idx)
        rows = np.minimum(rows, max(len(self.histories) - 1, 0))
        known = (idx > 0) & (self.histories.user_idx[rows] == idx) if len(self.histories) else idx < 0
        return np.where(known, rows, -1)


def _write_histories(path: Path, user_vocab: Vocab, seqs: UserSequences) -> None:
    offsets = pa.array(seqs.offsets.astype(np.int32))
    table = pa.table({
        C.USER_ID: pa.array(user_vocab.to_id(seqs.user_idx).astype(str)),
        "ITEM_IDX": pa.ListArray.from_arrays(offsets, pa.array(seqs.item_idx)),
        C.TIMESTAMP: pa.ListArray.from_arrays(offsets, pa.array(seqs.timestamp)),
    })
    pq.write_table(table, path)


def _read_histories(path: Path) -> tuple[Vocab, UserSequences]:
    table = pq.read_table(path)
    user_ids = table.column(C.USER_ID).to_pylist()
    items = table.column("ITEM_IDX").combine_chunks()
    times = table.column(C.TIMESTAMP).combine_chunks()
    user_vocab = Vocab(user_ids)
    seqs = UserSequences(np.arange(1, len(user_ids) + 1, dtype=np.int64), items.offsets.to_numpy().astype(np.int64),
                         items.values.to_numpy().astype(np.int64), times.values.to_numpy().astype(np.int64))
    return user_vocab, seqs


def save_solution_version(out_dir: str | Path, trainer, recipe: Recipe, item_vocab: Vocab, user_vocab: Vocab,
                          histories: UserSequences, info: dict) -> Path:
    """Write a solution version to `out_dir` (replacing a solution version already there)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / SOLUTION_JSON).exists():
        raise InputError("output_dir exists and is not a solution version; choose a new or empty directory",
                         column="output_dir", file=str(out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        trainer.save_checkpoint(tmp / CHECKPOINT)
        pq.write_table(pa.table({C.ITEM_ID: pa.array(np.asarray(item_vocab.ids, dtype=str))}), tmp / ITEMS_FILE)
        _write_histories(tmp / HISTORIES_FILE, user_vocab, histories)
        full_info = {
            "format_version": FORMAT_VERSION,
            "recipe": recipe.recipe_name,
            "hyperparameters": dict(recipe.hparams),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **info,
        }
        (tmp / SOLUTION_JSON).write_text(json.dumps(full_info, indent=2, default=float))
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def load_solution_version(path: str | Path, map_location: str = "cpu") -> SolutionVersion:
    path = Path(path)
    info_path = path / SOLUTION_JSON
    if not info_path.exists():
        raise InputError(f"not a solution version (no {SOLUTION_JSON})", file=str(path))
    info = json.loads(info_path.read_text())
    recipe_cls = RECIPES.get(info["recipe"])
    if recipe_cls is None:
        raise InputError(f"unknown recipe {info['recipe']!r}; known: {', '.join(RECIPES)}", file=str(info_path))
    checkpoint = torch.load(path / CHECKPOINT, map_location=map_location, weights_only=True)
    recipe = recipe_cls(**checkpoint["hyper_parameters"])
    recipe.load_state_dict(checkpoint["state_dict"])
    recipe.eval()
    item_ids = pq.read_table(path / ITEMS_FILE).column(C.ITEM_ID).to_pylist()
    user_vocab, histories = _read_histories(path / HISTORIES_FILE)
    return SolutionVersion(path, info, recipe, Vocab(item_ids), user_vocab, histories)
