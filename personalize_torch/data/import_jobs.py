"""Bulk imports into a dataset group directory, FULL or INCREMENTAL, as Personalize's dataset import jobs.

    python -m personalize_torch.data.import_jobs --group groups/shop --dataset Interactions --file day1.csv \\
        [--schema interactions.schema.json] [--mode FULL|INCREMENTAL]
    python train.py data.group=groups/shop recipe=...

A dataset group directory holds one Parquet table per dataset (Interactions, Items, Users) and
`group.json` (each dataset's schema and its import history). An import validates the whole CSV first
(exactly as `train.py` does for a CSV), so a bad file is refused with the file, line and column and
nothing already stored changes; the new table then replaces the old one atomically (write, then rename).

- FULL replaces the dataset's rows.
- INCREMENTAL adds rows: Interactions are appended (rows identical to stored ones are not added twice);
  Items and Users rows replace the stored row with the same ITEM_ID / USER_ID, or are added.
- A dataset's schema is fixed by its first import (as in Personalize); a later import may omit it, and a
  different one is refused naming the fields that differ.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.csv_import import read_dataset_csv
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.schema import Schema, load_schema, parse_schema
from personalize_torch.errors import InputError, exit_on_input_error

GROUP_FILE = "group.json"
MODES = ("FULL", "INCREMENTAL")
ID_COLUMN = {C.ITEMS: C.ITEM_ID, C.USERS: C.USER_ID}


def _read_group(group_dir: Path) -> dict:
    path = group_dir / GROUP_FILE
    return json.loads(path.read_text()) if path.exists() else {"name": group_dir.name, "datasets": {}}


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
    """Import one CSV into the group; returns the import record (rows read, rows stored after)."""
    if dataset_type not in C.DATASET_TYPES:
        raise InputError(f"unknown dataset {dataset_type!r}; expected one of {', '.join(C.DATASET_TYPES)}",
                         column="--dataset")
    mode = str(mode).upper()
    if mode not in MODES:
        raise InputError(f"expected FULL or INCREMENTAL, got {mode!r}", column="--mode")
    group_dir = Path(group_dir)
    group = _read_group(group_dir)
    stored = group["datasets"].get(dataset_type)
    schema = _schema_for(stored["schema"] if stored else None, schema, dataset_type)
    new, schema = read_dataset_csv(csv, dataset_type, schema)               # validates everything first
    table = group_dir / f"{dataset_type}.parquet"
    if mode == "INCREMENTAL" and table.exists():
        old = pd.read_parquet(table)
        if dataset_type == C.INTERACTIONS:
            merged = pd.concat([old, new], ignore_index=True).drop_duplicates(ignore_index=True)
        else:
            key = ID_COLUMN[dataset_type]
            merged = pd.concat([old, new], ignore_index=True).drop_duplicates(key, keep="last", ignore_index=True)
    else:
        merged = new
    group_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(table, lambda p: merged.to_parquet(p, index=False))
    record = {"file": str(csv), "mode": mode, "rows_read": int(len(new)), "rows_stored": int(len(merged)),
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    entry = group["datasets"].setdefault(dataset_type, {"schema": schema.to_avro(), "imports": []})
    entry["schema"] = schema.to_avro()
    entry["imports"].append(record)
    _write_atomically(group_dir / GROUP_FILE, lambda p: p.write_text(json.dumps(group, indent=2)))
    return record


def load_group_directory(group_dir: str | Path) -> DatasetGroup:
    """The dataset group a directory holds (what `data.group=<dir>` trains on)."""
    group_dir = Path(group_dir)
    if not (group_dir / GROUP_FILE).exists():
        raise InputError("not a dataset group directory (no group.json); create it with "
                         "python -m personalize_torch.data.import_jobs", file=str(group_dir), column="data.group")
    group = _read_group(group_dir)
    if C.INTERACTIONS not in group["datasets"]:
        raise InputError("the dataset group has no Interactions import yet", file=str(group_dir), column="data.group")
    tables, schemas = {}, {}
    for dataset_type, entry in group["datasets"].items():
        tables[dataset_type] = pd.read_parquet(group_dir / f"{dataset_type}.parquet")
        schemas[dataset_type] = parse_schema(entry["schema"], dataset_type, f"{group_dir}/{GROUP_FILE}")
    return DatasetGroup(tables[C.INTERACTIONS], tables.get(C.ITEMS), tables.get(C.USERS), schemas,
                        name=group.get("name", group_dir.name), source=str(group_dir / f"{C.INTERACTIONS}.parquet"))


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m personalize_torch.data.import_jobs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--group", required=True, help="the dataset group directory (created on first import)")
    p.add_argument("--dataset", required=True, choices=C.DATASET_TYPES)
    p.add_argument("--file", required=True, help="the CSV to import")
    p.add_argument("--schema", default=None, help="its Avro schema JSON (first import; inferred when omitted)")
    p.add_argument("--mode", default="FULL", help="FULL (replace) or INCREMENTAL (add / update)")
    args = p.parse_args(argv)
    record = import_dataset(args.group, args.dataset, args.file, args.schema, args.mode)
    print(f"{args.dataset}: {record['rows_read']} rows read, {record['rows_stored']} stored ({record['mode']}) "
          f"-> {args.group}")


if __name__ == "__main__":
    main()
