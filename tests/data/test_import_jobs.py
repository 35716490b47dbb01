"""Bulk imports into a dataset group directory: FULL replaces, INCREMENTAL adds, bad files change nothing."""

import json

import pytest

from personalize_torch.data import constants as C
from personalize_torch.data.import_jobs import import_dataset, load_group_directory, main as imports_main
from personalize_torch.errors import InputError
from personalize_torch.training import train
from tests.conftest import compose_train_config

SCHEMA = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
          "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                     {"name": "TIMESTAMP", "type": "long"}], "version": "1.0"}


def csv(tmp_path, name, rows, header="USER_ID,ITEM_ID,TIMESTAMP"):
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def _snapshot(group):
    """Every file of a group directory and its bytes."""
    return {p.relative_to(group).as_posix(): p.read_bytes() for p in sorted(group.rglob("*")) if p.is_file()}


def test_full_then_incremental_interactions(tmp_path):
    group = tmp_path / "group"
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps(SCHEMA))
    import_dataset(group, C.INTERACTIONS, csv(tmp_path, "a.csv", [("u1", "i1", 1), ("u1", "i2", 2)]), schema)
    record = import_dataset(group, C.INTERACTIONS, csv(tmp_path, "b.csv", [("u1", "i2", 2), ("u2", "i3", 3)]),
                            mode="INCREMENTAL")
    assert record == {**record, "rows_read": 2, "rows_stored": 3}           # the repeated row is kept once
    loaded = load_group_directory(group)
    assert loaded.interactions[C.ITEM_ID].tolist() == ["i1", "i2", "i3"]
    import_dataset(group, C.INTERACTIONS, csv(tmp_path, "c.csv", [("u9", "i9", 9)]), mode="FULL")
    assert load_group_directory(group).interactions[C.USER_ID].tolist() == ["u9"]
    history = json.loads((group / "group.json").read_text())["datasets"][C.INTERACTIONS]["imports"]
    assert [h["mode"] for h in history] == ["FULL", "INCREMENTAL", "FULL"]


def test_incremental_items_update_by_id(tmp_path):
    group = tmp_path / "group"
    import_dataset(group, C.INTERACTIONS, csv(tmp_path, "a.csv", [("u1", "i1", 1)]))
    import_dataset(group, C.ITEMS, csv(tmp_path, "i.csv", [("i1", "Comedy"), ("i2", "Drama")], "ITEM_ID,GENRES"))
    import_dataset(group, C.ITEMS, csv(tmp_path, "j.csv", [("i2", "Horror"), ("i3", "SciFi")], "ITEM_ID,GENRES"),
                   mode="incremental")
    items = load_group_directory(group).items.set_index(C.ITEM_ID)["GENRES"].to_dict()
    assert items == {"i1": "Comedy", "i2": "Horror", "i3": "SciFi"}


def test_a_bad_file_changes_nothing_and_names_the_line(tmp_path):
    group = tmp_path / "group"
    import_dataset(group, C.INTERACTIONS, csv(tmp_path, "a.csv", [("u1", "i1", 1)]))
    before = _snapshot(group)
    with pytest.raises(InputError) as err:
        import_dataset(group, C.INTERACTIONS, csv(tmp_path, "bad.csv", [("u2", "i2", 2), ("u3", "i3", "soon")]),
                       mode="INCREMENTAL")
    assert err.value.line == 3 and err.value.column == "TIMESTAMP"
    assert _snapshot(group) == before
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**SCHEMA, "fields": SCHEMA["fields"] + [{"name": "EVENT_TYPE", "type": "string"}]}))
    with pytest.raises(InputError, match="EVENT_TYPE"):
        import_dataset(group, C.INTERACTIONS, csv(tmp_path, "d.csv", [("u1", "i1", 1, "x")],
                                                  "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE"), other)


def test_train_py_trains_on_a_group_directory(tmp_path):
    from personalize_torch.data.synthetic import generate_demo_data

    demo = generate_demo_data(n_users=200, n_items=80)
    inter = demo.interactions[[C.USER_ID, C.ITEM_ID, C.TIMESTAMP]]
    half = len(inter) // 2
    group = tmp_path / "group"
    inter.iloc[:half].to_csv(tmp_path / "first.csv", index=False)
    inter.iloc[half:].to_csv(tmp_path / "second.csv", index=False)
    imports_main(["--group", str(group), "--dataset", "Interactions", "--file", str(tmp_path / "first.csv")])
    imports_main(["--group", str(group), "--dataset", "Interactions", "--file", str(tmp_path / "second.csv"),
                  "--mode", "INCREMENTAL"])
    result = train(compose_train_config([f"data.group={group}", "logger=none"], tmp_path))
    assert result["data"]["n_interactions"] == len(inter.drop_duplicates())
