"""TensorBoard's Embedding Projector for the item vectors a recipe learned, labelled with the item metadata.

After fitting (the best epoch's weights restored, so after `RestoreBestWeights` in the callback list), the
`max_items` most popular items' vectors go to `<log_dir>/<step>/item_embeddings/` with a metadata.tsv of
one row per item: ITEM_ID, the Items dataset's columns (GENRES, CATEGORY, TITLE, PRICE, ..., long text cut
to `max_label_chars`) and the item's number of interactions, so the Projector can colour and search by
them. `tensorboard --logdir <run dir>`, tab "Projector".

Recipes with an item table write one: User-Personalization and the recipes built on it (its item table,
metadata included), HRNN / HRNN-Meta / HRNN-Coldstart (the item vectors they score), Similar-Items (its
normalized id + metadata vectors). Count-based recipes (Popularity-Count, SIMS, Trending-Now) have none
and write nothing, as does a run without the TensorBoard logger. Off: `callbacks.embedding_projector=null`.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from personalize_torch.data import constants as C
from personalize_torch.data.prepared import PreparedData
from personalize_torch.recipes.base import Recipe

log = logging.getLogger(__name__)

TAG = "item_embeddings"
INTERACTIONS_COLUMN = "interactions"


def most_popular(counts: np.ndarray, max_items: int) -> np.ndarray:
    """Item indices (padding 0 left out) by interaction count, highest first (ties: lower index first)."""
    idx = np.arange(1, len(counts))
    order = np.lexsort((idx, -np.asarray(counts)[1:]))
    return idx[order][:max_items]


def item_labels(items: pd.DataFrame | None, item_ids: np.ndarray, counts: np.ndarray,
                max_label_chars: int = 100) -> tuple[list[str], list[list[str]]]:
    """(header, rows): ITEM_ID, every Items column, the interaction count; TSV-safe text."""
    table = pd.DataFrame({C.ITEM_ID: item_ids})
    if items is not None:
        meta = items.drop_duplicates(C.ITEM_ID, keep="last")
        meta = meta.set_index(pd.Index(meta[C.ITEM_ID].astype(str).to_numpy(dtype=object))).drop(columns=[C.ITEM_ID])
        meta = meta.astype(object).reindex(pd.Index(item_ids, dtype=object))   # object: ints stay ints
        table = pd.concat([table, meta.reset_index(drop=True)], axis=1)
    table[INTERACTIONS_COLUMN] = np.asarray(counts, dtype=object)
    text = table.astype(object).where(table.notna(), "").astype(str)
    text = text.apply(lambda col: col.str.replace(r"[\t\r\n]+", " ", regex=True).str.slice(0, max_label_chars))
    return [str(c) for c in table.columns], text.values.tolist()


def tensorboard_writer(trainer: pl.Trainer):
    """The SummaryWriter of the trainer's TensorBoard logger, or None."""
    from pytorch_lightning.loggers import TensorBoardLogger

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class EmbeddingProjector(pl.Callback):
    """Write the item vectors of the `max_items` most popular items to TensorBoard's Projector."""

    def __init__(self, max_items: int = 10_000, max_label_chars: int = 100, tag: str = TAG):
        self.max_items, self.max_label_chars, self.tag = int(max_items), int(max_label_chars), tag
        self.data: PreparedData | None = None

    def label_items(self, data: PreparedData) -> None:
        """The data whose items are shown: their ids, metadata and interaction counts (training calls it)."""
        self.data = data

    def on_fit_end(self, trainer: pl.Trainer, pl_module: Recipe) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or self.data is None or self.max_items <= 0:
            return
        table = pl_module.item_embeddings()
        if table is None:
            log.debug("%s has no item table: no embedding projector", type(pl_module).__name__)
            return
        data = self.data
        counts = data.item_interaction_counts
        rows = most_popular(counts, self.max_items)
        header, labels = item_labels(data.group.items, data.item_vocab.to_id(rows), counts[rows], self.max_label_chars)
        mat = table.detach()[torch.from_numpy(rows).to(table.device)].float().cpu()
        earlier = Path(writer.log_dir) / f"{trainer.global_step:05d}" / self.tag   # a run before in this log dir
        if earlier.is_dir():   # replaced, as add_embedding would, without its "Embedding dir exists" line
            shutil.rmtree(earlier)
        writer.add_embedding(mat, metadata=labels, metadata_header=header, tag=self.tag,
                             global_step=trainer.global_step)
        log.info("embedding projector: %d item vectors (%d dimensions) in %s", len(rows), mat.shape[1],
                 writer.log_dir)
