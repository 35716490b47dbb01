"""UPDATE a solution version with new items, without retraining (Personalize's trainingMode=UPDATE).

    python -m personalize_torch.update --solution <dir> --items new_items.csv [--items-schema s.json] --output <dir>

New items (and new metadata of known items) from an Items CSV are added to the catalogue: every
existing item keeps its index and weights, new items get fresh rows — zero id embeddings, the mean
item bias, no popularity — so recipes that read Items metadata (User-Personalization) score them by
their metadata at once, and every recipe can serve and filter them. Histories are unchanged.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from personalize_torch.data import constants as C
from personalize_torch.data.csv_import import read_dataset_csv
from personalize_torch.data.description import SIZE_NAMES, DataDescription
from personalize_torch.data.metadata_features import build_item_features, build_user_features
from personalize_torch.data.schema import Schema, parse_schema
from personalize_torch.data.text_features import build_text_tokens
from personalize_torch.data.vocab import Vocab
from personalize_torch.errors import InputError, exit_on_input_error
from personalize_torch.solution_version import (
    SOLUTION_JSON,
    SolutionVersion,
    load_solution_version,
    write_solution_version,
)


def grow_state(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor], n_old_items: int) -> dict[str, torch.Tensor]:
    """`new`'s tensors with `old`'s values in the leading slices (tables grow at the end). Rows of new
    items are zero, except `item_bias`, which gets the mean bias of the existing items."""
    out = {}
    for key, fresh in new.items():
        value = torch.zeros_like(fresh)
        if key in old:
            before = old[key]
            if before.shape == fresh.shape:
                value = before.clone()
            elif before.dim() == fresh.dim() and all(b <= f for b, f in zip(before.shape, fresh.shape)):
                value[tuple(slice(0, b) for b in before.shape)] = before
                if key.endswith("item_bias") and n_old_items > 1:
                    value[n_old_items:] = before[1:n_old_items].mean()
            else:
                raise ValueError(f"cannot grow {key} from {tuple(before.shape)} to {tuple(fresh.shape)}")
        out[key] = value
    return out


def updated_items_table(solution: SolutionVersion, new_items: pd.DataFrame) -> pd.DataFrame:
    """The solution's items (index order) with the new rows merged in: known ids updated, new ids appended."""
    table = pd.concat([solution.items, new_items], ignore_index=True)
    table = table.drop_duplicates(C.ITEM_ID, keep="last").astype({C.ITEM_ID: str})
    order = solution.item_vocab.extended(new_items[C.ITEM_ID].astype(str)).ids
    return table.set_index(C.ITEM_ID).reindex(pd.Index(order, name=C.ITEM_ID)).reset_index()


def grown_description(sol: SolutionVersion, items: pd.DataFrame, item_vocab: Vocab, items_schema: Schema | None
                       ) -> DataDescription:
    """What the solution's recipe was built from, with the grown catalogue: sizes and vocabularies from the
    solution version, the Items metadata encoded as the trained model expects (known values keep their
    indices, numbers the same standardization), new items with no events."""
    previous = sol.info.get("item_features")
    users_schema = sol.info.get("schemas", {}).get(C.USERS)
    if users_schema is not None:
        users_schema = parse_schema(users_schema, C.USERS, f"{sol.path}/{SOLUTION_JSON}")
    n_items = item_vocab.size_with_padding
    counts = np.bincount(sol.histories.item_idx, minlength=n_items)[:n_items]
    created = np.full(n_items, np.nan)   # `items` is in index order: row i is item index i + 1
    if C.CREATION_TIMESTAMP in items.columns:
        created[1:] = pd.to_numeric(items[C.CREATION_TIMESTAMP], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return DataDescription(
        n_items=n_items, n_users=sol.user_vocab.size_with_padding,
        context_cardinalities=tuple(v.size_with_padding for v in (sol.context_vocabs or {}).values()),
        event_type_names=tuple(sol.event_type_vocab.ids) if sol.event_type_vocab is not None else (),
        median_history_length=float(sol.info.get("data_description", {}).get("median_history_length", 0.0)),
        item_features=build_item_features(items, items_schema, item_vocab, previous),
        user_features=build_user_features(sol.users, users_schema, sol.user_vocab),
        item_text_tokens=build_text_tokens(items, items_schema, item_vocab), item_interaction_counts=counts,
        item_creation_timestamps=created)


def update_solution_version(solution_dir: str | Path, items_csv: str | Path, out_dir: str | Path,
                            items_schema: str | Path | None = None) -> Path:
    sol = load_solution_version(solution_dir)
    old_recipe = sol.recipe
    if old_recipe.combines_solution_versions:
        raise InputError(f"{old_recipe.recipe_name} combines other solution versions: update those, then train "
                         "the blend again", file=str(solution_dir))
    schema: Schema | str | Path | None = items_schema
    if schema is None and C.ITEMS in sol.info.get("schemas", {}):
        schema = parse_schema(sol.info["schemas"][C.ITEMS], C.ITEMS, f"{solution_dir}/{SOLUTION_JSON}")
    new_items, schema = read_dataset_csv(items_csv, C.ITEMS, schema)
    items = updated_items_table(sol, new_items)
    vocab = sol.item_vocab.extended(new_items[C.ITEM_ID].astype(str))
    n_old = sol.item_vocab.size_with_padding

    # The recipe rebuilt from the grown data with its trained hyperparameters (the description's sizes are
    # named as the recipes' constructor arguments, so they are the ones to leave out).
    data = grown_description(sol, items, vocab, schema)
    hyperparameters = {k: v for k, v in old_recipe.hparams.items() if k not in SIZE_NAMES}
    recipe = type(old_recipe).from_data(data, **hyperparameters)
    recipe.load_state_dict(grow_state(old_recipe.state_dict(), recipe.state_dict(), n_old))
    if sol.info.get("item_features") is not None:   # known items' metadata may have changed too
        recipe.set_item_metadata(data)

    def write_checkpoint(path: Path) -> None:
        torch.save({"state_dict": recipe.state_dict(), "hyper_parameters": dict(recipe.hparams)}, path)

    info = {k: v for k, v in sol.info.items()
            if k not in ("format_version", "recipe", "hyperparameters", "created", "vocabularies")}
    info.update(training_mode="UPDATE", base_solution=str(solution_dir), item_features=data.item_features.describe(),
                updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                n_new_items=int(vocab.size_with_padding - n_old), data_description=data.sizes())
    info.setdefault("schemas", {})[C.ITEMS] = schema.to_avro()
    return write_solution_version(out_dir, write_checkpoint, recipe, items, sol.users, sol.user_vocab, sol.histories,
                                  sol.context_vocabs or {}, sol.event_type_vocab, info,
                                  filter_interactions=sol.filter_interactions)


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m personalize_torch.update", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solution", required=True, help="the solution version to update")
    p.add_argument("--items", required=True, help="Items CSV with the new (or changed) items")
    p.add_argument("--items-schema", default=None, help="its schema (default: the solution's Items schema)")
    p.add_argument("--output", required=True, help="where to write the updated solution version")
    args = p.parse_args(argv)
    if Path(args.output).resolve() == Path(args.solution).resolve():
        raise InputError("write the update to a new directory (the campaign can then switch to it)", column="--output")
    out = update_solution_version(args.solution, args.items, args.output, args.items_schema)
    print(f"updated solution version written to {out}")


if __name__ == "__main__":
    main()
