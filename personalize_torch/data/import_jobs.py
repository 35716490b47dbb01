"""Bulk imports into a dataset group directory, FULL or INCREMENTAL, as Personalize's dataset import jobs.

    python -m personalize_torch.data.import_jobs --group groups/shop --dataset Interactions --file day1.csv \\
        [--schema interactions.schema.json] [--mode FULL|INCREMENTAL]
    python train.py data.group=groups/shop recipe=...

A dataset group directory holds the datasets as Parquet (Interactions partitioned by user, see
`group_store`) and `group.json` (each dataset's schema, its import history and its files). An import
reads and validates the whole file first (CSV or Parquet, exactly as `train.py` does), so a bad file is
refused with the file, line and column and nothing already stored changes. The new rows go to new files;
group.json, replaced atomically (written to a temporary file, flushed to disk, renamed), then names them:
that rename is the import's commit. An import stopped at any point (killed, a crash, a power cut) leaves
group.json naming the files it named before, so the group loads as it was; the files the stopped import
wrote are never read, and the next import removes them. One import runs at a time in a group (a lock file,
`.import.lock`, released by the system when its process ends however it ends).

- FULL replaces the dataset's rows.
- INCREMENTAL adds rows: Interactions are appended as new files, without rewriting the stored ones (rows
  identical to stored ones are not added twice); Items and Users rows replace the stored row with the same
  ITEM_ID / USER_ID, or are added.
- A dataset's schema is fixed by its first import (as in Personalize); a later import may omit it, and a
  different one is refused naming the fields that differ.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from personalize_torch.data import constants as C
from personalize_torch.data.block_conversion import concat_typed, typed_frame
from personalize_torch.data.dataset_files import read_dataset_table
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.durable_files import write_atomically
from personalize_torch.data.group_store import (
    INTERACTIONS_BUCKETS,
    decode,
    encode,
    new_rows_only,
    read_encoded_parts,
    read_ids,
    unnamed_files,
    user_buckets,
    write_ids,
    write_interaction_parts,
    write_table,
)
from personalize_torch.data.schema import Schema, load_schema, parse_schema
from personalize_torch.errors import InputError, exit_on_input_error, read_json_file

GROUP_FILE = "group.json"
LOCK_FILE = ".import.lock"
MODES = ("FULL", "INCREMENTAL")
ID_COLUMN = {C.ITEMS: C.ITEM_ID, C.USERS: C.USER_ID}


def _read_group(group_dir: Path) -> dict:
    path = group_dir / GROUP_FILE
    if not path.exists():
        return {"name": group_dir.name, "datasets": {}}
    group = read_json_file(path, "dataset group file")
    if not isinstance(group, dict) or not isinstance(group.get("datasets"), dict):
        raise InputError("not a dataset group file (no \"datasets\")", file=str(path))
    return group


@contextmanager
def _import_lock(group_dir: Path) -> Iterator[None]:
    """Hold the group's import lock (refused, not waited for, while another import holds it)."""
    group_dir.mkdir(parents=True, exist_ok=True)
    with open(group_dir / LOCK_FILE, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError("another import into this dataset group is running; try again when it has finished",
                             file=str(group_dir)) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def leftover_files(group_dir: str | Path) -> list[Path]:
    """The files in the group that group.json does not name: left by an import that was stopped midway
    (never read; the next import removes them)."""
    group_dir = Path(group_dir)
    return _leftovers(group_dir, _read_group(group_dir))


def _leftovers(group_dir: Path, group: dict) -> list[Path]:
    named = set().union(*[_stored_files(group_dir, name, entry) for name, entry in group["datasets"].items()])
    return unnamed_files(group_dir, named)


def _schema_for(stored: dict | None, given: str | Path | Schema | None, dataset_type: str) -> Schema | None:
    if given is not None and not isinstance(given, Schema):
        given = load_schema(given, dataset_type)
    if stored is None:
        return given
    fixed = parse_schema(stored, dataset_type, f"{dataset_type} schema of the dataset group")
    if given is not None and given.to_avro() != fixed.to_avro():
        before = {f.name: f.to_avro() for f in fixed.fields}
        after = {f.name: f.to_avro() for f in given.fields}
        differ = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
        raise InputError(f"the {dataset_type} dataset's schema is fixed by its first import; these fields differ: "
                         f"{', '.join(differ)}", file=str(given.source), column="--schema")
    return fixed


def import_dataset(group_dir: str | Path, dataset_type: str, csv: str | Path,
                   schema: str | Path | Schema | None = None, mode: str = "FULL") -> dict:
    """Import one CSV or Parquet file into the group; returns the import record (rows read, rows stored
    after)."""
    if dataset_type not in C.DATASET_TYPES:
        raise InputError(f"unknown dataset {dataset_type!r}; expected one of {', '.join(C.DATASET_TYPES)}",
                         column="--dataset")
    mode = str(mode).upper()
    if mode not in MODES:
        raise InputError(f"expected FULL or INCREMENTAL, got {mode!r}", column="--mode")
    group_dir = Path(group_dir)
    with _import_lock(group_dir):
        return _import_locked(group_dir, dataset_type, csv, schema, mode)


def _import_locked(group_dir: Path, dataset_type: str, csv: str | Path, schema: str | Path | Schema | None,
                   mode: str) -> dict:
    group = _read_group(group_dir)
    for leftover in _leftovers(group_dir, group):      # from an import that was stopped midway
        leftover.unlink(missing_ok=True)
    stored = group["datasets"].get(dataset_type)
    schema = _schema_for(stored["schema"] if stored else None, schema, dataset_type)
    new, schema = read_dataset_table(csv, dataset_type, schema)              # validates everything first
    import_number = sum(len(e.get("imports", [])) for e in group["datasets"].values()) + 1
    entry = group["datasets"].get(dataset_type) or {"schema": schema.to_avro(), "imports": []}
    old_files = _stored_files(group_dir, dataset_type, entry)
    if dataset_type == C.INTERACTIONS:
        files, ids, rows_stored = _import_interactions(group_dir, entry, new, schema, mode, import_number)
        entry["ids"] = ids
    else:
        files, rows_stored = _import_table(group_dir, dataset_type, entry, typed_frame(new, schema), schema, mode,
                                           import_number)
    record = {"file": str(csv), "mode": mode, "rows_read": new.num_rows, "rows_stored": rows_stored,
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    entry["schema"] = schema.to_avro()
    entry["files"] = files
    entry["imports"].append(record)
    group["datasets"][dataset_type] = entry
    write_atomically(group_dir / GROUP_FILE, lambda p: p.write_text(json.dumps(group, indent=2)))   # the commit
    now = {f["path"] for f in files} | set(entry.get("ids", {}).values())
    for path in old_files - now:                            # what the previous state named and this one does not
        (group_dir / path).unlink(missing_ok=True)
    return record


def _stored_files(group_dir: Path, dataset_type: str, entry: dict) -> set[str]:
    if "files" in entry:
        return {f["path"] for f in entry["files"]} | set(entry.get("ids", {}).values())
    legacy = f"{dataset_type}.parquet"                      # a group written before files were listed
    return {legacy} if (group_dir / legacy).exists() else set()


def _import_interactions(group_dir: Path, entry: dict, new: pa.Table, schema: Schema, mode: str,
                         import_number: int) -> tuple[list[dict], dict[str, str], int]:
    """INCREMENTAL: the new rows (those not stored already) as new files in their users' buckets; FULL:
    all rows as new files, which replace the old ones once group.json names them. Returns the files, the
    ids files and the number of rows stored."""
    if mode == "FULL" or not entry.get("imports"):
        table, ids = encode(new, schema, {})
        files = write_interaction_parts(group_dir, table, _buckets(table, ids), import_number)
        return files, write_ids(group_dir, ids, import_number), sum(f["rows"] for f in files)
    stored_files, stored_ids = _stored_interactions(group_dir, entry, schema, import_number)
    table, ids = encode(new, schema, stored_ids)
    n_buckets = max([INTERACTIONS_BUCKETS] + [f["bucket"] + 1 for f in stored_files])
    buckets = _buckets(table, ids, n_buckets)
    added, added_buckets = [], []
    for b in np.unique(buckets):
        rows = table.take(np.flatnonzero(buckets == b))
        added.append(new_rows_only(read_encoded_parts(group_dir, [f for f in stored_files if f["bucket"] == b]),
                                   rows))
        added_buckets.append(np.full(added[-1].num_rows, b, dtype=buckets.dtype))
    files = stored_files + write_interaction_parts(group_dir, pa.concat_tables(added), np.concatenate(added_buckets),
                                                   import_number, n_buckets)
    return files, write_ids(group_dir, ids, import_number), sum(f["rows"] for f in files)


def _buckets(table: pa.Table, ids: dict[str, pd.Index], n_buckets: int = INTERACTIONS_BUCKETS) -> np.ndarray:
    """The bucket of each encoded row's user."""
    return user_buckets(table.column(C.USER_ID).to_numpy(), ids[C.USER_ID], n_buckets)


def _stored_interactions(group_dir: Path, entry: dict, schema: Schema, import_number: int
                         ) -> tuple[list[dict], dict[str, pd.Index]]:
    """The stored Interactions files and ids; a group written as one Interactions.parquet is first
    split into buckets."""
    if "files" in entry:
        return list(entry["files"]), read_ids(group_dir, entry.get("ids", {}))
    table, ids = encode(pq.read_table(group_dir / f"{C.INTERACTIONS}.parquet"), schema, {})
    files = write_interaction_parts(group_dir, table, _buckets(table, ids), import_number - 1)
    return files, ids


def _table_path(group_dir: Path, dataset_type: str, entry: dict) -> Path:
    """The Items / Users file group.json names (a group written before files were listed: `Items.parquet`)."""
    files = entry.get("files")
    return group_dir / (files[0]["path"] if files else f"{dataset_type}.parquet")


def _import_table(group_dir: Path, dataset_type: str, entry: dict, new: pd.DataFrame, schema: Schema,
                  mode: str, import_number: int) -> tuple[list[dict], int]:
    """Items / Users: an id's last row wins, within the file and, INCREMENTAL, over the stored row."""
    if mode == "INCREMENTAL" and entry.get("imports"):
        new = concat_typed([typed_frame(pq.read_table(_table_path(group_dir, dataset_type, entry)), schema), new])
    merged = new.drop_duplicates(ID_COLUMN[dataset_type], keep="last", ignore_index=True)
    path = write_table(group_dir, dataset_type, merged, import_number)
    return [{"path": path, "rows": len(merged)}], len(merged)


def load_group_directory(group_dir: str | Path, share: tuple[int, int] | None = None) -> DatasetGroup:
    """The dataset group a directory holds (what `data.group=<dir>` trains on). `share=(rank, world_size)`:
    only the Interactions of that share of the users (see `group_store`)."""
    group_dir = Path(group_dir)
    if not (group_dir / GROUP_FILE).exists():
        raise InputError("not a dataset group directory (no group.json); create it with "
                         "python -m personalize_torch.data.import_jobs", file=str(group_dir), column="data.group")
    group = _read_group(group_dir)
    if C.INTERACTIONS not in group["datasets"]:
        raise InputError("the dataset group has no Interactions import yet", file=str(group_dir), column="data.group")
    tables, schemas, ids = {}, {}, {}
    for dataset_type, entry in group["datasets"].items():
        schema = parse_schema(entry["schema"], dataset_type, f"{group_dir}/{GROUP_FILE}")
        schemas[dataset_type] = schema
        if dataset_type == C.INTERACTIONS and "files" in entry:
            ids = read_ids(group_dir, entry.get("ids", {}))
            tables[dataset_type] = decode(read_encoded_parts(group_dir, entry["files"], share), schema, ids)
        else:
            tables[dataset_type] = typed_frame(pq.read_table(_table_path(group_dir, dataset_type, entry)), schema)
    return DatasetGroup(tables[C.INTERACTIONS], tables.get(C.ITEMS), tables.get(C.USERS), schemas,
                        name=group.get("name", group_dir.name), source=str(group_dir / C.INTERACTIONS),
                        share=share, all_item_ids=ids.get(C.ITEM_ID) if share else None,
                        all_user_ids=ids.get(C.USER_ID) if share else None)


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m personalize_torch.data.import_jobs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--group", required=True, help="the dataset group directory (created on first import)")
    p.add_argument("--dataset", required=True, choices=C.DATASET_TYPES)
    p.add_argument("--file", required=True, help="the CSV or Parquet file to import")
    p.add_argument("--schema", default=None, help="its Avro schema JSON (first import; inferred when omitted)")
    p.add_argument("--mode", default="FULL", help="FULL (replace) or INCREMENTAL (add / update)")
    args = p.parse_args(argv)
    record = import_dataset(args.group, args.dataset, args.file, args.schema, args.mode)
    print(f"{args.dataset}: {record['rows_read']} rows read, {record['rows_stored']} stored ({record['mode']}) "
          f"-> {args.group}")


if __name__ == "__main__":
    main()
