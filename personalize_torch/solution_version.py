"""Saved models ("solution versions"): one directory, written atomically, read with weights_only=True.

    solution.json          recipe, hyperparameters, the data description's sizes, data fingerprint, metrics,
                           creation time
    model.ckpt             the Lightning checkpoint (state dict + primitive hyperparameters)
    items.parquet          ITEM_ID of item index 1, 2, ... (index 0 is padding) and the Items metadata
    users.parquet          the Users metadata (when the dataset group has one)
    user_histories.parquet USER_ID and each user's items (indices, oldest first), timestamps, event types,
                           contextual fields (indices into the vocabularies in solution.json) and, when the
                           data has impressions, each event's slate (item indices; exploration reads them)
    filter_interactions.parquet  only when the event selection (eventType, eventValueThreshold, a domain use
                           case) trained on part of the interactions: the interactions filters read, every
                           event type (each user's 100 most recent per type), so a model of View events can
                           still leave out what a user purchased
    user_states.npy        float32 (users, user_state_dimension): each user's `Recipe.user_state` of their
                           stored history (row = row of user_histories.parquet), for recipes that split their
                           scoring (User-Personalization). Computed once here, at the end of training and by
                           UPDATE; a server memory-maps it instead of running the sequence model over every
                           user at start. Solution versions written before it existed load without it.
    manifest.json          the size and SHA-256 of every other file (`solution_manifest`), written last;
                           loading checks them and refuses a missing, truncated or altered file, naming it

The directory is written under a temporary name, its files flushed to disk, and renamed into place, so a
crash never leaves half a model where a model is expected.

Loading is sized for tens of millions of users: user and item ids stay Arrow string arrays looked up through
hashes (`StoredIds`), histories are read as numpy arrays without Python objects per event or per user, the
checkpoint is memory-mapped (its optimizer state is never read) and the user states too.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from personalize_torch.data import constants as C
from personalize_torch.data.batching import sequence_batch
from personalize_torch.data.durable_files import sync_directory
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.ragged import Ragged
from personalize_torch.data.sequences import UserSequences
from personalize_torch.data.stored_ids import StoredIds, StoredSequences
from personalize_torch.data.vocab import Vocab
from personalize_torch.errors import InputError
from personalize_torch.filters.catalogue import MAX_INTERACTIONS_PER_EVENT_TYPE
from personalize_torch.recipes import RECIPES, Recipe
from personalize_torch.solution_manifest import MANIFEST, start_verify, write_manifest

FORMAT_VERSION = 1
SOLUTION_JSON = "solution.json"
CHECKPOINT = "model.ckpt"
ITEMS_FILE = "items.parquet"
HISTORIES_FILE = "user_histories.parquet"
USERS_FILE = "users.parquet"
FILTER_INTERACTIONS_FILE = "filter_interactions.parquet"
USER_STATES_FILE = "user_states.npy"
IMPRESSIONS_COLUMN = "IMPRESSION_IDX"
# Users per `user_state` call when the states are computed at save time: at most this many padded events
# (about 64 MB per activation at hidden_dimension 64) and this many users. Few, large calls: a recipe may
# recompute catalogue-wide tables per call (User-Personalization's item table with metadata: ~1-2 s at 1M
# items), so 200,000 users in batches of 256 spent ~25 minutes on that alone.
STATE_BATCH_EVENTS = 1 << 18
STATE_BATCH_USERS = 1 << 16

def _ids_column(vocab: Vocab | StoredIds, idx: np.ndarray) -> pa.Array:
    """The ids of indices `idx` as an Arrow string column."""
    if isinstance(vocab, StoredIds):
        return vocab.take(idx)
    return pa.array(vocab.to_id(idx).astype(str))


@dataclass
class SolutionVersion:
    path: Path
    info: dict
    recipe: Recipe
    item_vocab: Vocab | StoredIds
    user_vocab: Vocab | StoredIds
    histories: UserSequences  # rows sorted by user index
    items: pd.DataFrame  # ITEM_ID and metadata, row i = item index i + 1
    users: pd.DataFrame | None = None  # USER_ID and metadata
    context_vocabs: dict[str, Vocab] | None = None
    event_type_vocab: Vocab | None = None
    # USER_ID, ITEM_ID, TIMESTAMP[, EVENT_TYPE] for filters, when training selected part of the events
    filter_interactions: pd.DataFrame | None = None
    # (len(histories), recipe.user_state_dimension) float32, memory-mapped: each history row's user state;
    # None when the recipe has none or the solution version was written before they were stored
    user_states: np.ndarray | None = None

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


def _write_histories(path: Path, user_vocab: Vocab | StoredIds, seqs: UserSequences, context_names: list[str]
                     ) -> None:
    offsets = pa.array(seqs.offsets.astype(np.int32))
    columns = {
        C.USER_ID: _ids_column(user_vocab, seqs.user_idx),
        "ITEM_IDX": pa.ListArray.from_arrays(offsets, pa.array(seqs.item_idx)),
        C.TIMESTAMP: pa.ListArray.from_arrays(offsets, pa.array(seqs.timestamp)),
    }
    if seqs.event_type is not None:
        columns["EVENT_TYPE_IDX"] = pa.ListArray.from_arrays(offsets, pa.array(seqs.event_type))
    for f, name in enumerate(context_names):
        columns[f"CONTEXT_{name}"] = pa.ListArray.from_arrays(offsets, pa.array(seqs.context[:, f]))
    if seqs.impressions is not None:   # per user, per event, the slate
        slates = pa.LargeListArray.from_arrays(pa.array(seqs.impressions.offsets.astype(np.int64)),
                                                pa.array(seqs.impressions.values))
        columns[IMPRESSIONS_COLUMN] = pa.ListArray.from_arrays(offsets, slates)
    pq.write_table(pa.table(columns), path)


def _read_histories(path: Path, context_names: list[str]) -> tuple[StoredIds, UserSequences]:
    """The users' ids and histories; numpy arrays straight from Arrow's buffers (no Python object per user
    or per event)."""
    table = pq.read_table(path)

    def values(name: str) -> np.ndarray:
        return table.column(name).combine_chunks().values.to_numpy().astype(np.int64, copy=False)

    user_ids = StoredIds(table.column(C.USER_ID))
    items = table.column("ITEM_IDX").combine_chunks()
    context = np.stack([values(f"CONTEXT_{n}") for n in context_names], axis=1) if context_names else None
    event_type = values("EVENT_TYPE_IDX") if "EVENT_TYPE_IDX" in table.column_names else None
    impressions = None
    if IMPRESSIONS_COLUMN in table.column_names:
        slates = table.column(IMPRESSIONS_COLUMN).combine_chunks().values   # one list per event
        impressions = Ragged(slates.offsets.to_numpy().astype(np.int64),
                             slates.values.to_numpy().astype(np.int64))
    seqs = StoredSequences(np.arange(1, len(user_ids) + 1, dtype=np.int64), items.offsets.to_numpy().astype(np.int64),
                           values("ITEM_IDX"), values(C.TIMESTAMP), impressions, context, event_type)
    return user_ids, seqs


def compute_user_states(recipe: Recipe, histories: UserSequences, out: np.ndarray,
                        max_events: int = STATE_BATCH_EVENTS, max_users: int = STATE_BATCH_USERS) -> np.ndarray:
    """Fill `out` (len(histories), recipe.user_state_dimension) with each history row's `recipe.user_state`
    (eval mode, float32, on the recipe's device), in few large calls: users in order of history length, each
    call at most `max_events` padded events and `max_users` users."""
    lengths = histories.lengths
    if recipe.input_length is not None:
        lengths = np.minimum(lengths, recipe.input_length)
    order = np.argsort(lengths, kind="stable")
    was_training = recipe.training
    recipe.eval()
    try:
        with torch.no_grad(), torch.autocast(recipe.device.type, enabled=False):
            start = 0
            while start < len(order):
                # the longest of the next users sets the width: take as many as fit in max_events
                width = np.maximum(lengths[order[start:start + max_users]], 1)
                fits = np.flatnonzero(width * np.arange(1, len(width) + 1) <= max_events)
                stop = start + max(int(fits[-1]) + 1 if len(fits) else 1, 1)
                rows = order[start:stop]
                inputs = sequence_batch(histories, rows, recipe.input_length).to(recipe.device)
                out[rows] = recipe.user_state(inputs).float().cpu().numpy()
                start = stop
    finally:
        recipe.train(was_training)
    return out


def _write_user_states(path: Path, recipe: Recipe, histories: UserSequences, states: np.ndarray | None) -> None:
    """user_states.npy: `states` when given (e.g. a benchmark's), else computed (`compute_user_states`)
    into the file, batch by batch, so memory stays bounded by one batch."""
    dim = recipe.user_state_dimension
    shape = (len(histories), int(dim))
    if states is not None and tuple(states.shape) != shape:
        raise ValueError(f"user_states has shape {tuple(states.shape)}, expected {shape}")
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    if states is not None:
        for start in range(0, shape[0], 1 << 20):
            out[start:start + (1 << 20)] = states[start:start + (1 << 20)]
    else:
        compute_user_states(recipe, histories, out)
    out.flush()
    del out


def _read_user_states(path: Path, recipe: Recipe, n_rows: int) -> np.ndarray | None:
    """The stored user states, memory-mapped (read-only); None when the file is absent (a solution version
    written before they were stored) or the recipe has no user state."""
    dim = recipe.user_state_dimension
    if dim is None or not path.exists():
        return None
    states = np.load(path, mmap_mode="r")
    if states.dtype != np.float32 or tuple(states.shape) != (n_rows, int(dim)):
        raise InputError(f"user states of shape {tuple(states.shape)} ({states.dtype}); expected ({n_rows}, {dim}) "
                         "float32", file=str(path))
    return states


def _item_table(data: PreparedData) -> pd.DataFrame:
    """ITEM_ID in index order with the Items metadata (null for items the Items dataset lacks)."""
    items = pd.DataFrame({C.ITEM_ID: np.asarray(data.item_vocab.ids, dtype=str)})
    if data.group.items is not None:
        meta = data.group.items.drop_duplicates(C.ITEM_ID, keep="last").astype({C.ITEM_ID: str})
        items = items.merge(meta, on=C.ITEM_ID, how="left")
    return items


def _filter_interactions(data: PreparedData) -> pd.DataFrame | None:
    """The interactions filters read (Personalize's filters see the whole Interactions dataset), when the
    event selection trained on fewer: each user's most recent events per event type, oldest first."""
    inter = data.group.interactions
    if len(data.interactions) == len(inter):
        return None
    table = inter[[c for c in (C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT_TYPE) if c in inter.columns]]
    table = table.astype({C.USER_ID: str, C.ITEM_ID: str}).sort_values(C.TIMESTAMP, ascending=False, kind="stable")
    keys = [table[C.USER_ID]] + ([table[C.EVENT_TYPE].astype(str).str.lower()] if C.EVENT_TYPE in table else [])
    recent = table[table.groupby(keys, sort=False).cumcount().to_numpy() < MAX_INTERACTIONS_PER_EVENT_TYPE]
    return recent.iloc[::-1].reset_index(drop=True)


def save_solution_version(out_dir: str | Path, trainer, recipe: Recipe, data: PreparedData, info: dict
                          ) -> Path:
    """Write a solution version to `out_dir` (replacing a solution version already there): the recipe's
    weights, the data's vocabularies and description, every user's history and the item / user metadata.
    `trainer.save_checkpoint` writes the checkpoint (with several processes, on rank 0 after a barrier): the
    weights and hyperparameters, which is all loading reads (no optimizer state: a solution version is served
    or updated, not resumed)."""
    return write_solution_version(
        out_dir, functools.partial(trainer.save_checkpoint, weights_only=True), recipe, _item_table(data),
        data.group.users, data.user_vocab, data.sequences, data.context_vocabs, data.event_type_vocab,
        {"schemas": {name: schema.to_avro() for name, schema in data.group.schemas.items()},
         "item_features": data.item_features.describe(), "user_features": data.user_features.describe(),
         "data_description": data.describe().sizes(), **info},
        filter_interactions=_filter_interactions(data))


def write_solution_version(out_dir: str | Path, write_checkpoint, recipe: Recipe, items: pd.DataFrame,
                           users: pd.DataFrame | None, user_vocab: Vocab | StoredIds, histories: UserSequences,
                           context_vocabs: dict[str, Vocab], event_type_vocab: Vocab | None, info: dict,
                           filter_interactions: pd.DataFrame | None = None,
                           user_states: np.ndarray | None = None) -> Path:
    """Write the files of a solution version under a temporary name, then rename it into place.
    `write_checkpoint(path)` writes the model checkpoint (e.g. `trainer.save_checkpoint`). For a recipe with
    a user state, every history row's state is stored too: `user_states` when given (rows as `histories`),
    else computed from the recipe."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / SOLUTION_JSON).exists():
        raise InputError("output_dir exists and is not a solution version; choose a new or empty directory",
                         column="output_dir", file=str(out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        write_checkpoint(tmp / CHECKPOINT)
        items.to_parquet(tmp / ITEMS_FILE, index=False)
        if users is not None:
            users.to_parquet(tmp / USERS_FILE, index=False)
        if filter_interactions is not None:
            filter_interactions.to_parquet(tmp / FILTER_INTERACTIONS_FILE, index=False)
        _write_histories(tmp / HISTORIES_FILE, user_vocab, histories, list(context_vocabs))
        if recipe.user_state_dimension is not None:
            _write_user_states(tmp / USER_STATES_FILE, recipe, histories, user_states)
        full_info = {
            "format_version": FORMAT_VERSION,
            "recipe": recipe.recipe_name,
            "hyperparameters": dict(recipe.hparams),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "vocabularies": {
                "context": {name: [str(v) for v in vocab.ids] for name, vocab in context_vocabs.items()},
                "event_type": [str(v) for v in event_type_vocab.ids] if event_type_vocab is not None else None,
            },
            **info,
            "manifest": MANIFEST,
        }
        (tmp / SOLUTION_JSON).write_text(json.dumps(full_info, indent=2, default=float))
        write_manifest(tmp)     # last: every file's size and SHA-256, each flushed to disk
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
        sync_directory(out_dir.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def build_saved_recipe(name: str, hyperparameters: dict) -> Recipe:
    """The recipe `name` rebuilt from saved hyperparameters (weights not loaded)."""
    return RECIPES[name].from_saved(hyperparameters, build_saved_recipe)


def load_solution_version(path: str | Path, map_location: str = "cpu", verify: str = "sha256") -> SolutionVersion:
    """The solution version in directory `path`, its files checked against its manifest (`verify`: "sha256"
    every byte, "size" only that each file is there whole, "off"; see `solution_manifest`): a missing,
    truncated or (sha256) altered file is an InputError naming it. The checksums are computed while the files
    are loaded; the solution version is returned only once they match."""
    path = Path(path)
    if not (path / SOLUTION_JSON).exists() and not (path / MANIFEST).exists():
        raise InputError(f"not a solution version (no {SOLUTION_JSON})", file=str(path))
    check = start_verify(path, verify)      # sizes now (names a missing or cut file); checksums in threads
    try:
        solution = _load_checked_files(path, map_location, verify, check.checked)
    except Exception:
        check.result()      # a damaged file explains the failure: name it
        raise
    check.result()
    return solution


def _load_checked_files(path: Path, map_location: str, verify: str, checked: bool) -> SolutionVersion:
    info_path = path / SOLUTION_JSON
    try:
        info = json.loads(info_path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"not a solution version (no {SOLUTION_JSON})", file=str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("not valid JSON: the solution version is damaged", file=str(info_path)) from None
    if not isinstance(info, dict) or "recipe" not in info:
        raise InputError("not a solution version's description (no recipe)", file=str(info_path))
    if not checked and verify != "off" and info.get("manifest"):
        start_verify(path, verify, required=True)     # written with a manifest that is gone: refused
    recipe_cls = RECIPES.get(info["recipe"])
    if recipe_cls is None:
        raise InputError(f"unknown recipe {info['recipe']!r}; known: {', '.join(RECIPES)}", file=str(info_path))
    # memory-mapped: only the weights are read (a Lightning checkpoint may also hold the optimizer's state,
    # twice the weights with AdamW), and nothing of it stays in memory once copied into the recipe
    checkpoint = torch.load(path / CHECKPOINT, map_location=map_location, weights_only=True, mmap=True)
    recipe = recipe_cls.from_saved(checkpoint["hyper_parameters"], build_saved_recipe)
    recipe.load_state_dict(checkpoint["state_dict"])
    del checkpoint
    recipe.eval()
    item_table = pq.read_table(path / ITEMS_FILE)
    items = item_table.to_pandas()
    users = pd.read_parquet(path / USERS_FILE) if (path / USERS_FILE).exists() else None
    vocabularies = info.get("vocabularies", {})
    context_vocabs = {name: Vocab(ids) for name, ids in (vocabularies.get("context") or {}).items()}
    event_types = vocabularies.get("event_type")
    user_vocab, histories = _read_histories(path / HISTORIES_FILE, list(context_vocabs))
    filter_path = path / FILTER_INTERACTIONS_FILE
    return SolutionVersion(path, info, recipe, StoredIds(item_table.column(C.ITEM_ID).cast(pa.string())), user_vocab,
                           histories, items, users, context_vocabs,
                           Vocab(event_types) if event_types is not None else None,
                           pd.read_parquet(filter_path) if filter_path.exists() else None,
                           _read_user_states(path / USER_STATES_FILE, recipe, len(histories)))
