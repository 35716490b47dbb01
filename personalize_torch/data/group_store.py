"""How a dataset group directory keeps its datasets: Parquet files, Interactions partitioned by user.

    <group>/group.json                                  schemas, import history, the files of each dataset
    <group>/Interactions/bucket=03/part-00002.parquet   rows of the users whose id hashes to bucket 3,
                                                        from the group's import number 2
    <group>/Interactions/ids/USER_ID-00002.parquet      the ids of a string column: row i is code i
    <group>/Items.parquet, <group>/Users.parquet

In the Interactions files, USER_ID, ITEM_ID and the other string columns stored as Categoricals (see
`block_conversion.is_categorical_column`) hold int32 codes into the column's ids file, which lists every
id once, in the order first imported; an import appends the ids it brings. Reading a hundred million rows
then hashes no string: the codes are the Categorical's codes.

Every user's events are in one bucket, so a training rank or a batch worker reads only the buckets of
its share of users (`share=(rank, world_size)`: buckets b with b % world_size == rank). An INCREMENTAL
import of Interactions adds files and rewrites none (only the ids files grow); group.json lists the files
a load reads, so files written by an import that did not finish are never read. The hive-style folder
names let Arrow and other tools open the table as a partitioned data set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from personalize_torch.data import constants as C
from personalize_torch.data.block_conversion import (
    arrow_type,
    is_categorical_column,
    shares_one_dictionary,
    typed_frame,
)
from personalize_torch.data.durable_files import TMP_PREFIX, write_atomically
from personalize_torch.data.schema import Schema
from personalize_torch.data.stored_ids import hash_strings

INTERACTIONS_BUCKETS = 16
PROGRESS_MIN_ROWS = 10_000_000   # a progress bar on stderr while writing at least this many rows


def string_buckets(ids: pa.Array, n_buckets: int) -> np.ndarray:
    """A bucket in [0, n_buckets) for each string of `ids`, the same on every machine and in every run:
    the FNV-1a hash of its UTF-8 bytes (`stored_ids.hash_strings`) through splitmix64's finalizer."""
    h = hash_strings(ids.cast(pa.string()))
    with np.errstate(over="ignore"):
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h % np.uint64(n_buckets)).astype(np.int64)


def user_buckets(user_codes: np.ndarray, user_ids: pd.Index, n_buckets: int) -> np.ndarray:
    """The bucket of each row's user, from its code into `user_ids` (each id the rows use hashed once, not
    every stored id: an increment of a few users to a group of millions hashes a few); uint8 (a byte a row)
    while there are at most 256 buckets."""
    present = np.flatnonzero(np.bincount(user_codes, minlength=len(user_ids)) > 0)
    by_id = np.zeros(len(user_ids), dtype=np.uint8 if n_buckets <= 256 else np.int64)
    by_id[present] = string_buckets(pa.array(user_ids.to_numpy(dtype=object)[present], pa.string()), n_buckets)
    return by_id[user_codes]


def _write_parquet_atomically(table: pa.Table, path: Path) -> None:
    write_atomically(path, lambda tmp: pq.write_table(table, tmp))


def coded_columns(schema: Schema) -> list[str]:
    """The Interactions columns stored as codes into an ids file."""
    return [f.name for f in schema.fields if is_categorical_column(f, schema.dataset_type)]


def read_ids(group_dir: Path, paths: dict[str, str]) -> dict[str, pd.Index]:
    """Each coded column's ids, from the files group.json names ({column: relative path})."""
    return {name: pd.Index(pq.read_table(group_dir / path).column("id").to_numpy(zero_copy_only=False)
                           .astype(object), dtype=object) for name, path in paths.items()}


def encode(table: pa.Table, schema: Schema, stored_ids: dict[str, pd.Index]
           ) -> tuple[pa.Table, dict[str, pd.Index]]:
    """Typed rows (as `read_dataset_table` gives them: coded columns dictionary-encoded) as a table of codes
    (coded columns) and values (the others), with each coded column's ids: the stored ones, then the new
    ids the rows bring. Only the distinct ids are looked up, never a row's string."""
    columns, ids = {}, {}
    coded = set(coded_columns(schema))
    for name in table.column_names:
        column = table.column(name)
        if name not in coded:
            columns[name] = column
            continue
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(column)
        if column.num_chunks > 1 and not shares_one_dictionary(column):
            column = column.unify_dictionaries()
        dictionary = column.chunk(0).dictionary if column.num_chunks else pa.array([], pa.string())
        categories = pd.Index(dictionary.to_numpy(zero_copy_only=False).astype(object), dtype=object)
        known = stored_ids.get(name, pd.Index([], dtype=object))
        position = known.get_indexer(categories) if len(known) else np.full(len(categories), -1)
        new = categories[position < 0]
        position[position < 0] = len(known) + np.arange(len(new))
        position = np.append(position, -1).astype(np.int32)     # index -1 (a missing value) stays missing
        chunks = []
        for chunk in column.chunks:                             # chunk by chunk: no table-sized temporaries
            indices = pc.fill_null(chunk.indices, -1).to_numpy().astype(np.int32, copy=False)
            values = position[indices]
            chunks.append(pa.array(values, mask=values < 0))
        columns[name] = pa.chunked_array(chunks, type=pa.int32())
        ids[name] = known.append(new) if len(new) else known
    return pa.table(columns), ids


def write_ids(group_dir: Path, ids: dict[str, pd.Index], import_number: int) -> dict[str, str]:
    """Write each coded column's ids as a new file of this import (the files group.json names until it
    names these stay untouched); returns {column: relative path}."""
    paths = {}
    for name, values in ids.items():
        relative = f"{C.INTERACTIONS}/ids/{name}-{import_number:05d}.parquet"
        (group_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        _write_parquet_atomically(pa.table({"id": pa.array(values.to_numpy(dtype=object), pa.string())}),
                                  group_dir / relative)
        paths[name] = relative
    return paths


def write_interaction_parts(group_dir: Path, table: pa.Table, buckets: np.ndarray, import_number: int,
                            n_buckets: int = INTERACTIONS_BUCKETS) -> list[dict]:
    """Write the encoded rows `table` (row i in bucket `buckets[i]`, see `user_buckets`) as one file per
    non-empty bucket; returns the file records for group.json ({"path": relative path, "bucket": b, "rows": n})."""
    records = []
    for b in tqdm(range(n_buckets), desc="writing buckets", unit="bucket", file=sys.stderr,
                  disable=table.num_rows < PROGRESS_MIN_ROWS):
        rows = np.flatnonzero(buckets == b)
        if not len(rows):
            continue
        relative = Path(C.INTERACTIONS) / f"bucket={b:02d}" / f"part-{import_number:05d}.parquet"
        (group_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        _write_parquet_atomically(table.take(rows), group_dir / relative)
        records.append({"path": relative.as_posix(), "bucket": b, "rows": len(rows)})
    return records


def in_share(bucket: int, share: tuple[int, int] | None) -> bool:
    return share is None or bucket % share[1] == share[0]


def read_encoded_parts(group_dir: Path, files: list[dict], share: tuple[int, int] | None = None
                       ) -> pa.Table | None:
    """The encoded rows of the listed files (those of `share`'s buckets only, when given); None if none."""
    chosen = [group_dir / f["path"] for f in files if in_share(int(f["bucket"]), share)]
    if not chosen:
        return None
    return pa.concat_tables([pq.read_table(path) for path in chosen], promote_options="permissive")


def decode(table: pa.Table | None, schema: Schema, ids: dict[str, pd.Index]) -> pd.DataFrame:
    """The typed DataFrame of encoded rows: coded columns become Categoricals over their ids."""
    out = {}
    coded = set(coded_columns(schema))
    for f in schema.fields:
        if f.name in coded:
            categories = ids.get(f.name, pd.Index([], dtype=object))
            codes = (table.column(f.name).to_numpy(zero_copy_only=False) if table is not None
                     else np.zeros(0, dtype=np.int32))
            codes = np.nan_to_num(codes, nan=-1).astype(np.int32) if codes.dtype.kind == "f" else codes.astype(np.int32)
            dtype = pd.CategoricalDtype(categories.astype("str") if len(categories) else pd.Index([], dtype="str"))
            out[f.name] = pd.Series(pd.Categorical.from_codes(codes, dtype=dtype))
    plain = Schema(schema.dataset_type, [f for f in schema.fields if f.name not in coded], schema.source)
    if plain.fields:
        empty = {f.name: pa.array([], type=arrow_type(f)) for f in plain.fields}
        frame = typed_frame(table.select(plain.names) if table is not None else pa.table(empty), plain)
        for name in frame.columns:
            out[name] = frame[name]
    return pd.DataFrame({f.name: out[f.name] for f in schema.fields})


def new_rows_only(stored: pa.Table | None, new: pa.Table) -> pa.Table:
    """The rows of `new` (encoded) that are not already in `stored` (encoded) nor repeated within `new`.
    Only the stored rows of the users `new` has are compared (a row is its user's)."""
    if stored is not None:
        stored = stored.filter(pc.is_in(stored.column(C.USER_ID), value_set=pc.unique(new.column(C.USER_ID))))
    frames = [t.to_pandas() for t in (stored, new) if t is not None]
    both = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    repeated = both.duplicated(keep="first").to_numpy()[len(both) - len(new):]
    return new.take(np.flatnonzero(~repeated))


def write_table(group_dir: Path, dataset_type: str, frame: pd.DataFrame, import_number: int) -> str:
    """Items / Users: one Parquet file per import (`Items-00003.parquet`; the file group.json names stays
    untouched until group.json names this one); returns its relative path."""
    relative = f"{dataset_type}-{import_number:05d}.parquet"
    group_dir.mkdir(parents=True, exist_ok=True)
    _write_parquet_atomically(pa.Table.from_pandas(frame, preserve_index=False), group_dir / relative)
    return relative


# The files an import writes, by name: what `unnamed_files` may remove. Nothing else in a group directory is
# ever removed (a user's own files stay).
_NUMBER = "[0-9]" * 5
_GROUP_FILE_PATTERNS = (f"Interactions/bucket=[0-9]*/part-{_NUMBER}.parquet", f"Interactions/ids/*-{_NUMBER}.parquet",
                        f"Items-{_NUMBER}.parquet", f"Users-{_NUMBER}.parquet",
                        "Interactions.parquet", "Items.parquet", "Users.parquet")


def unnamed_files(group_dir: Path, named: set[str]) -> list[Path]:
    """Files of the group's own kinds that group.json does not name (`named`: relative paths), and
    temporary files: what an import that was stopped midway left. Never read; safe to remove while no
    import runs."""
    leftovers = set()
    for pattern in _GROUP_FILE_PATTERNS:
        for path in group_dir.glob(pattern):
            if path.relative_to(group_dir).as_posix() not in named:
                leftovers.add(path)
    leftovers.update(p for p in group_dir.rglob(f"{TMP_PREFIX}*.tmp-*") if p.is_file())
    return sorted(leftovers)
