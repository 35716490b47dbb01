"""The dataset group directory at scale: Interactions partitioned by user, appended without rewriting,
read by share, imported from Parquet as from CSV."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from personalize_torch.data import constants as C
from personalize_torch.data.group_store import INTERACTIONS_BUCKETS, string_buckets
from personalize_torch.data.import_jobs import import_dataset, load_group_directory
from personalize_torch.data.parquet_import import read_dataset_parquet
from personalize_torch.errors import InputError


def _events(n_users=60, per_user=5, start=0, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat([f"u{i}" for i in range(start, start + n_users)], per_user)
    return pd.DataFrame({C.USER_ID: users, C.ITEM_ID: [f"i{k}" for k in rng.integers(0, 40, len(users))],
                         C.TIMESTAMP: np.arange(len(users)) + 1_600_000_000})


def _write(tmp_path, name, frame):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _files(group):
    """The files of rows (not the ids files, which an import replaces) and when each was written."""
    return {p.relative_to(group).as_posix(): p.stat().st_mtime_ns for p in group.rglob("part-*.parquet")}


def test_buckets_are_stable_spread_and_keep_a_user_in_one_bucket():
    ids = pa.array([f"user-{i}" for i in range(20_000)] + ["", "é", "user-1"])
    buckets = string_buckets(ids, INTERACTIONS_BUCKETS)
    assert buckets[1] == buckets[-1]                               # the same id, the same bucket
    counts = np.bincount(buckets[:20_000], minlength=INTERACTIONS_BUCKETS)
    assert counts.min() > 0.8 * 20_000 / INTERACTIONS_BUCKETS       # spread evenly
    # fixed values: the bucket of an id never changes between runs, machines or versions
    assert string_buckets(pa.array(["u1", "u2", "customer-42", ""]), 16).tolist() == [15, 0, 6, 11]
    assert string_buckets(pa.array(["u1", "u2", "customer-42", ""]), 1000).tolist() == [175, 680, 574, 203]
    assert len(set(string_buckets(pa.array(["a", "b", "c", "d", "e", "f", "g", "h"]), 1000).tolist())) == 8


def test_interactions_are_stored_by_user_bucket_and_read_by_share(tmp_path):
    group = tmp_path / "group"
    events = _events()
    import_dataset(group, C.INTERACTIONS, _write(tmp_path, "a.csv", events))
    files = json.loads((group / "group.json").read_text())["datasets"][C.INTERACTIONS]["files"]
    assert len(files) > 4 and all(f["path"].startswith("Interactions/bucket=") for f in files)
    whole = load_group_directory(group).interactions
    assert len(whole) == len(events)
    shares = [load_group_directory(group, share=(rank, 3)).interactions for rank in range(3)]
    assert sum(len(s) for s in shares) == len(events)
    users = [set(s[C.USER_ID].astype(str)) for s in shares]
    assert not (users[0] & users[1]) and not (users[1] & users[2]) and not (users[0] & users[2])
    assert set().union(*users) == set(events[C.USER_ID])
    catalogue = load_group_directory(group).catalogue_item_ids().tolist()
    for rank in range(3):                                         # every share knows the whole catalogue
        assert load_group_directory(group, share=(rank, 3)).catalogue_item_ids().tolist() == catalogue
    for share in shares:                                          # each user's events complete in one share
        for user, rows in share.groupby(share[C.USER_ID].astype(str)):
            assert len(rows) == 5, user


def test_incremental_import_adds_files_and_rewrites_none(tmp_path):
    group = tmp_path / "group"
    first = _events(n_users=40)
    import_dataset(group, C.INTERACTIONS, _write(tmp_path, "a.csv", first))
    before = _files(group)
    second = pd.concat([first.iloc[:7], _events(n_users=10, start=100, seed=1)])   # 7 rows already stored
    record = import_dataset(group, C.INTERACTIONS, _write(tmp_path, "b.csv", second), mode="INCREMENTAL")
    after = _files(group)
    assert all(after[path] == mtime for path, mtime in before.items())   # stored files untouched
    assert set(after) > set(before)
    assert record["rows_read"] == len(second) and record["rows_stored"] == len(first) + 50
    loaded = load_group_directory(group).interactions
    assert len(loaded) == len(first) + 50
    assert set(loaded[C.USER_ID].astype(str)) == set(first[C.USER_ID]) | {f"u{i}" for i in range(100, 110)}
    import_dataset(group, C.INTERACTIONS, _write(tmp_path, "c.csv", _events(n_users=3, start=500)))  # FULL
    assert set(load_group_directory(group).interactions[C.USER_ID].astype(str)) == {"u500", "u501", "u502"}
    assert not any(path in _files(group) for path in after)           # the replaced files are gone


def test_a_group_stored_as_one_interactions_file_still_loads_and_takes_increments(tmp_path):
    group = tmp_path / "group"
    group.mkdir()
    first = _events(n_users=20)
    first.to_parquet(group / "Interactions.parquet", index=False)
    schema = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
              "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                         {"name": "TIMESTAMP", "type": "long"}], "version": "1.0"}
    (group / "group.json").write_text(json.dumps({"name": "old", "datasets": {C.INTERACTIONS: {
        "schema": schema, "imports": [{"file": "x.csv", "mode": "FULL", "rows_read": 100, "rows_stored": 100}]}}}))
    assert len(load_group_directory(group).interactions) == 100
    import_dataset(group, C.INTERACTIONS, _write(tmp_path, "b.csv", _events(n_users=2, start=90)), mode="INCREMENTAL")
    assert len(load_group_directory(group).interactions) == 110
    assert not (group / "Interactions.parquet").exists()


def test_parquet_import_types_checks_and_names_the_row(tmp_path):
    events = _events(n_users=5)
    events["EVENT_VALUE"] = np.linspace(0, 1, len(events))
    path = tmp_path / "events.parquet"
    events.to_parquet(path, index=False)
    df, schema = read_dataset_parquet(path, C.INTERACTIONS)
    assert isinstance(df[C.USER_ID].dtype, pd.CategoricalDtype)
    assert df[C.TIMESTAMP].dtype == np.int64 and df[C.TIMESTAMP].tolist() == events[C.TIMESTAMP].tolist()
    assert df[C.USER_ID].astype(str).tolist() == events[C.USER_ID].tolist()
    assert schema.get(C.EVENT_VALUE).type == "float"
    bad = events.astype({C.TIMESTAMP: str})
    bad.loc[12, C.TIMESTAMP] = "soon"
    bad.to_parquet(path, index=False)
    with pytest.raises(InputError) as err:
        read_dataset_parquet(path, C.INTERACTIONS)
    assert err.value.column == C.TIMESTAMP and "row 13" in err.value.message and "'soon'" in err.value.message
    millis = events.assign(TIMESTAMP=events[C.TIMESTAMP] * 1000)
    millis.to_parquet(path, index=False)
    with pytest.raises(InputError, match="not in epoch seconds"):
        read_dataset_parquet(path, C.INTERACTIONS)


def test_parquet_file_imports_into_a_group(tmp_path):
    events = _events(n_users=30)
    path = tmp_path / "events.parquet"
    events.to_parquet(path, index=False)
    record = import_dataset(tmp_path / "group", C.INTERACTIONS, path)
    assert record["rows_stored"] == len(events)
    loaded = load_group_directory(tmp_path / "group").interactions
    assert sorted(loaded[C.USER_ID].astype(str)) == sorted(events[C.USER_ID])


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "events.parquet"
    path.write_text("USER_ID,ITEM_ID\n")
    with pytest.raises(InputError, match="not a Parquet file"):
        read_dataset_parquet(path, C.INTERACTIONS)


def test_an_import_that_stops_before_group_json_leaves_the_stored_group_as_it_was(tmp_path, monkeypatch):
    from personalize_torch.data import import_jobs

    group = tmp_path / "group"
    first = _events(n_users=20)
    import_dataset(group, C.INTERACTIONS, _write(tmp_path, "a.csv", first))
    real = import_jobs.write_atomically

    def crash_on_group_json(path, write):
        if path.name == "group.json":
            raise KeyboardInterrupt("killed")
        return real(path, write)

    monkeypatch.setattr(import_jobs, "write_atomically", crash_on_group_json)
    for mode in ("INCREMENTAL", "FULL"):
        with pytest.raises(KeyboardInterrupt):
            import_dataset(group, C.INTERACTIONS, _write(tmp_path, "b.csv", _events(n_users=5, start=70)), mode=mode)
        loaded = load_group_directory(group).interactions
        assert sorted(zip(loaded[C.USER_ID].astype(str), loaded[C.TIMESTAMP])) == \
            sorted(zip(first[C.USER_ID], first[C.TIMESTAMP]))
    monkeypatch.setattr(import_jobs, "write_atomically", real)
    import_dataset(group, C.INTERACTIONS, _write(tmp_path, "b.csv", _events(n_users=5, start=70)), mode="INCREMENTAL")
    assert len(load_group_directory(group).interactions) == len(first) + 25


def test_rows_appended_to_imported_ids_keep_new_ids():
    """Stored events (strings) appended to imported Interactions (Categoricals): new ids stay ids, not NaN."""
    from personalize_torch.data.block_conversion import concat_typed

    imported = pd.DataFrame({C.USER_ID: pd.Categorical(["u1", "u2"]), C.ITEM_ID: pd.Categorical(["a", "b"]),
                             C.TIMESTAMP: [1, 2]})
    streamed = pd.DataFrame({C.USER_ID: ["u9", "u1"], C.ITEM_ID: ["z", "a"], C.TIMESTAMP: [3, 4]})
    both = concat_typed([imported, streamed])
    assert isinstance(both[C.USER_ID].dtype, pd.CategoricalDtype)
    assert both[C.USER_ID].tolist() == ["u1", "u2", "u9", "u1"] and both[C.ITEM_ID].tolist() == ["a", "b", "z", "a"]
    assert both[C.TIMESTAMP].tolist() == [1, 2, 3, 4]
