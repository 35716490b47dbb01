"""Personalize schemas: the real sample schemas, every validation error, to_avro and infer_schema."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from personalize_torch.data import constants as C
from personalize_torch.data.schema import Field, Schema, infer_schema, load_schema, parse_schema
from personalize_torch.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "data" / "amazon_personalize"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} is absent")

# (path under amazon_personalize, dataset type, {field: (type, nullable, categorical, textual)} in file order)
REAL_SCHEMAS = {
    "movielens_poc/schemas/interactions.schema.json": (C.INTERACTIONS, {
        "USER_ID": ("string", False, False, False), "ITEM_ID": ("string", False, False, False),
        "EVENT_TYPE": ("string", False, False, False), "TIMESTAMP": ("long", False, False, False)}),
    "movielens_poc/schemas/items.schema.json": (C.ITEMS, {
        "ITEM_ID": ("string", False, False, False), "GENRE": ("string", False, True, False),
        "YEAR": ("int", False, False, False)}),
    "impressions_schema_only/interactions_with_impression.schema.json": (C.INTERACTIONS, {
        "EVENT_TYPE": ("string", False, False, False), "IMPRESSION": ("string", False, False, False),
        "ITEM_ID": ("string", False, False, False), "TIMESTAMP": ("long", False, False, False),
        "USER_ID": ("string", False, False, False)}),
    "impressions_schema_only/items_with_creation_timestamp.schema.json": (C.ITEMS, {
        "ITEM_ID": ("string", False, False, False), "GENRES": ("string", False, True, False),
        "CREATION_TIMESTAMP": ("long", False, False, False)}),
    "airline_marketing/schemas/interactions.schema.json": (C.INTERACTIONS, {
        "ITEM_ID": ("string", False, False, False), "USER_ID": ("string", False, False, False),
        "TIMESTAMP": ("long", False, False, False), "CABIN_TYPE": ("string", False, True, False),
        "EVENT_TYPE": ("string", False, False, False), "EVENT_VALUE": ("float", False, False, False)}),
    "airline_marketing/schemas/items.schema.json": (C.ITEMS, {
        "ITEM_ID": ("string", False, False, False), "DSTCity": ("string", True, True, False),
        "SRCCity": ("string", True, True, False), "Airline": ("string", True, True, False),
        "DurationDays": ("int", False, False, False), "Season": ("string", True, True, False),
        "numberOfSearchByUser": ("int", False, False, False), "Promotion": ("string", True, True, False),
        "DynamicPrice": ("int", False, False, False), "DiscountForMember": ("float", False, False, False),
        "Expired": ("string", True, True, False)}),
    "airline_marketing/schemas/users.schema.json": (C.USERS, {
        "USER_ID": ("string", False, False, False), "memberClass": ("string", False, True, False)}),
}

# Metadata fields (neither ids nor reserved names) of each real schema.
REAL_METADATA = {
    "movielens_poc/schemas/interactions.schema.json": [],
    "movielens_poc/schemas/items.schema.json": ["GENRE", "YEAR"],
    "impressions_schema_only/interactions_with_impression.schema.json": [],
    "impressions_schema_only/items_with_creation_timestamp.schema.json": ["GENRES"],
    "airline_marketing/schemas/interactions.schema.json": ["CABIN_TYPE"],
    "airline_marketing/schemas/items.schema.json": [
        "DSTCity", "SRCCity", "Airline", "DurationDays", "Season", "numberOfSearchByUser", "Promotion",
        "DynamicPrice", "DiscountForMember", "Expired"],
    "airline_marketing/schemas/users.schema.json": ["memberClass"],
}


def _record(name: str, fields: list[dict]) -> dict:
    return {"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
            "fields": fields, "version": "1.0"}


def _write(tmp_path: Path, obj, name: str = "schema.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(obj, indent=2))
    return path


def _load_error(path: Path, dataset_type: str | None = None) -> InputError:
    with pytest.raises(InputError) as info:
        load_schema(path, dataset_type)
    err = info.value
    assert err.file == str(path)
    assert str(path) in str(err)
    return err


ID = {"name": "ITEM_ID", "type": "string"}
UID = {"name": "USER_ID", "type": "string"}
TS = {"name": "TIMESTAMP", "type": "long"}


# --------------------------------------------------------------------------- the real sample schemas


@needs_samples
@pytest.mark.real_data
def test_every_sample_schema_is_covered():
    found = sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*.json"))
    assert found == sorted(REAL_SCHEMAS)


@needs_samples
@pytest.mark.real_data
@pytest.mark.parametrize("rel", sorted(REAL_SCHEMAS))
def test_sample_schema_parses(rel):
    dataset_type, expected = REAL_SCHEMAS[rel]
    schema = load_schema(SAMPLES / rel)
    assert schema.dataset_type == dataset_type
    assert schema.source == str(SAMPLES / rel)
    assert schema.names == list(expected)
    got = {f.name: (f.type, f.nullable, f.categorical, f.textual) for f in schema.fields}
    assert got == expected
    assert [f.name for f in schema.metadata_fields] == REAL_METADATA[rel]


@needs_samples
@pytest.mark.real_data
@pytest.mark.parametrize("rel", sorted(REAL_SCHEMAS))
def test_sample_schema_to_avro_reproduces_the_file(rel):
    original = json.loads((SAMPLES / rel).read_text())
    schema = load_schema(SAMPLES / rel)
    assert schema.to_avro() == original
    again = parse_schema(json.loads(json.dumps(schema.to_avro())), source=schema.source)
    assert again == schema


@needs_samples
@pytest.mark.real_data
def test_sample_schema_dataset_type_argument_overrides_record_name():
    # The users schema is a valid Users schema; read as Users explicitly, and refused as Interactions.
    path = SAMPLES / "airline_marketing/schemas/users.schema.json"
    assert load_schema(path, C.USERS).dataset_type == C.USERS
    err = _load_error(path, C.INTERACTIONS)
    assert "Interactions schema needs a ITEM_ID field" in err.message


# --------------------------------------------------------------------------- valid hand-written schemas


def test_nullable_union_in_either_order(tmp_path):
    path = _write(tmp_path, _record("Items", [
        ID, {"name": "GENRES", "type": ["null", "string"], "categorical": True},
        {"name": "PRICE", "type": ["double", "null"]},
        {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
        {"name": "IN_STOCK", "type": "boolean"}]))
    schema = load_schema(path)
    assert schema.dataset_type == C.ITEMS
    assert schema.get("GENRES") == Field("GENRES", "string", nullable=True, categorical=True)
    assert schema.get("PRICE") == Field("PRICE", "double", nullable=True)
    assert schema.get("PRICE").is_numeric
    assert schema.get("DESCRIPTION") == Field("DESCRIPTION", "string", nullable=True, textual=True)
    assert schema.get("IN_STOCK") == Field("IN_STOCK", "boolean")
    assert not schema.get("IN_STOCK").is_numeric
    assert schema.get("NOPE") is None
    # to_avro writes unions as ["null", <type>]
    assert schema.to_avro()["fields"][2] == {"name": "PRICE", "type": ["null", "double"]}


def test_interactions_with_all_reserved_fields_and_int_timestamp():
    schema = parse_schema(_record("Interactions", [
        UID, ID, {"name": "TIMESTAMP", "type": "int"}, {"name": "EVENT_TYPE", "type": "string"},
        {"name": "EVENT_VALUE", "type": "double"}, {"name": "IMPRESSION", "type": "string"},
        {"name": "RECOMMENDATION_ID", "type": "string"},
        {"name": "DEVICE", "type": ["null", "string"], "categorical": True}]))
    assert schema.get("TIMESTAMP").type == "int"
    assert [f.name for f in schema.metadata_fields] == ["DEVICE"]


def test_to_avro_round_trip_of_a_built_schema():
    schema = Schema(C.ITEMS, [Field("ITEM_ID", "string"), Field("CREATION_TIMESTAMP", "long"),
                              Field("GENRES", "string", nullable=True, categorical=True),
                              Field("TEXT", "string", nullable=True, textual=True),
                              Field("PRICE", "float", nullable=True)], "built")
    avro = schema.to_avro()
    assert avro == {
        "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
        "fields": [{"name": "ITEM_ID", "type": "string"}, {"name": "CREATION_TIMESTAMP", "type": "long"},
                   {"name": "GENRES", "type": ["null", "string"], "categorical": True},
                   {"name": "TEXT", "type": ["null", "string"], "textual": True},
                   {"name": "PRICE", "type": ["null", "float"]}]}
    assert parse_schema(avro, source="built") == schema


# --------------------------------------------------------------------------- errors


def test_unknown_type_names_field_and_file(tmp_path):
    path = _write(tmp_path, _record("Users", [UID, {"name": "AGE", "type": "integer"}]))
    err = _load_error(path)
    assert "'AGE'" in err.message
    assert "unknown type 'integer'" in err.message


def test_unknown_type_inside_a_union(tmp_path):
    path = _write(tmp_path, _record("Users", [UID, {"name": "AGE", "type": ["null", "number"]}]))
    err = _load_error(path)
    assert "'AGE'" in err.message and "'number'" in err.message


def test_union_of_two_types_is_refused(tmp_path):
    path = _write(tmp_path, _record("Users", [UID, {"name": "AGE", "type": ["null", "int", "string"]}]))
    err = _load_error(path)
    assert "'AGE'" in err.message and "union" in err.message


def test_duplicate_field(tmp_path):
    path = _write(tmp_path, _record("Interactions", [UID, ID, TS, {"name": "ITEM_ID", "type": "string"}]))
    err = _load_error(path)
    assert err.column == "ITEM_ID"
    assert "duplicate field 'ITEM_ID'" in err.message


@pytest.mark.parametrize("missing", ["USER_ID", "ITEM_ID", "TIMESTAMP"])
def test_interactions_missing_required_field(tmp_path, missing):
    fields = [f for f in (UID, ID, TS, {"name": "EVENT_TYPE", "type": "string"}) if f["name"] != missing]
    path = _write(tmp_path, _record("Interactions", fields))
    err = _load_error(path)
    assert err.message == f"Interactions schema needs a {missing} field"


@pytest.mark.parametrize("dataset_type, missing", [("Items", "ITEM_ID"), ("Users", "USER_ID")])
def test_items_users_missing_id(tmp_path, dataset_type, missing):
    path = _write(tmp_path, _record(dataset_type, [{"name": "GENRE", "type": "string", "categorical": True}]))
    err = _load_error(path)
    assert err.message == f"{dataset_type} schema needs a {missing} field"


def test_timestamp_of_type_string(tmp_path):
    path = _write(tmp_path, _record("Interactions", [UID, ID, {"name": "TIMESTAMP", "type": "string"}]))
    err = _load_error(path)
    assert "TIMESTAMP" in err.message
    assert "long or int" in err.message and "not string" in err.message


def test_reserved_optional_field_of_wrong_type(tmp_path):
    path = _write(tmp_path, _record("Interactions", [UID, ID, TS, {"name": "EVENT_VALUE", "type": "string"}]))
    err = _load_error(path)
    assert "EVENT_VALUE" in err.message and "not string" in err.message


@pytest.mark.parametrize("nullable", ["USER_ID", "ITEM_ID", "TIMESTAMP"])
def test_nullable_required_field(tmp_path, nullable):
    fields = [dict(f, type=["null", f["type"]]) if f["name"] == nullable else f for f in (UID, ID, TS)]
    path = _write(tmp_path, _record("Interactions", fields))
    err = _load_error(path)
    assert err.message == f"field {nullable} is required and cannot be nullable"


def test_textual_field_in_interactions(tmp_path):
    path = _write(tmp_path, _record("Interactions", [UID, ID, TS, {"name": "NOTE", "type": "string", "textual": True}]))
    err = _load_error(path)
    assert "'NOTE'" in err.message and "only in Items" in err.message


def test_textual_field_in_users(tmp_path):
    path = _write(tmp_path, _record("Users", [UID, {"name": "BIO", "type": ["null", "string"], "textual": True}]))
    err = _load_error(path)
    assert "'BIO'" in err.message and "only in Items" in err.message


def test_two_textual_fields_in_items(tmp_path):
    path = _write(tmp_path, _record("Items", [
        ID, {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
        {"name": "SUMMARY", "type": ["null", "string"], "textual": True}]))
    err = _load_error(path)
    assert err.message == "at most one textual field is allowed"


def test_categorical_non_string(tmp_path):
    path = _write(tmp_path, _record("Items", [ID, {"name": "YEAR", "type": "int", "categorical": True}]))
    err = _load_error(path)
    assert "'YEAR'" in err.message and "only string fields" in err.message


@pytest.mark.parametrize("dataset_type, fields", [("Items", [ID]), ("Users", [UID])])
def test_items_users_without_metadata_field(tmp_path, dataset_type, fields):
    path = _write(tmp_path, _record(dataset_type, fields))
    err = _load_error(path)
    assert err.message == f"an {dataset_type} schema needs at least one metadata field"


def test_unknown_dataset_type(tmp_path):
    path = _write(tmp_path, _record("Clicks", [UID, ID, TS]))
    err = _load_error(path)
    assert "unknown dataset type 'Clicks'" in err.message


def test_not_a_record(tmp_path):
    path = _write(tmp_path, {"type": "map", "fields": []})
    err = _load_error(path)
    assert "Avro record" in err.message


def test_invalid_field_name(tmp_path):
    path = _write(tmp_path, _record("Users", [UID, {"name": "AGE GROUP", "type": "string"}]))
    err = _load_error(path)
    assert "'AGE GROUP'" in err.message


def test_invalid_json_reports_line(tmp_path):
    path = tmp_path / "broken.schema.json"
    path.write_text(
        "{\n"
        '  "type": "record",\n'
        '  "name": "Users",\n'
        '  "fields": [\n'
        '    {"name": "USER_ID", "type": "string"}\n'
        '    {"name": "AGE", "type": "int"}\n'  # line 6: missing comma before it
        "  ]\n"
        "}\n")
    err = _load_error(path)
    assert err.line == 6
    assert err.message.startswith("not valid JSON")
    assert f"{path}, line 6: not valid JSON" in str(err)


def test_missing_schema_file(tmp_path):
    path = tmp_path / "nope.json"
    err = _load_error(path)
    assert err.message == "schema file not found"


# --------------------------------------------------------------------------- infer_schema


def test_infer_interactions_schema_from_header():
    header = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION", "RECOMMENDATION_ID",
              "PRICE", "DEVICE", "EMPTY"]
    sample = pd.DataFrame({
        "USER_ID": ["1", "2", "3"], "ITEM_ID": ["10", "11", "12"], "TIMESTAMP": ["100", "200", "300"],
        "EVENT_TYPE": ["click", "buy", "click"], "EVENT_VALUE": ["1", "2.5", None],
        "IMPRESSION": ["10|11", "11", "12|10"], "RECOMMENDATION_ID": ["r1", None, "r3"],
        "PRICE": ["1.5", "", "-3e2"], "DEVICE": ["phone", "1", None], "EMPTY": [None, "", None]}, dtype=object)
    schema = infer_schema(C.INTERACTIONS, header, sample, source="x.csv")
    assert schema.dataset_type == C.INTERACTIONS
    assert schema.source == "x.csv"
    assert schema.names == header
    got = {f.name: (f.type, f.nullable, f.categorical, f.textual) for f in schema.fields}
    assert got == {
        "USER_ID": ("string", False, False, False), "ITEM_ID": ("string", False, False, False),
        "TIMESTAMP": ("long", False, False, False), "EVENT_TYPE": ("string", False, False, False),
        "EVENT_VALUE": ("float", False, False, False), "IMPRESSION": ("string", False, False, False),
        "RECOMMENDATION_ID": ("string", False, False, False),
        "PRICE": ("float", True, False, False),  # numeric column -> nullable float
        "DEVICE": ("string", True, True, False),  # anything else -> nullable categorical string
        "EMPTY": ("string", True, True, False),  # no values at all -> categorical string
    }
    # the inferred schema is a valid Personalize schema
    assert parse_schema(schema.to_avro(), source="x.csv") == schema


def test_infer_items_schema_textual_and_creation_timestamp():
    header = ["ITEM_ID", "CREATION_TIMESTAMP", "GENRES", "DESCRIPTION", "YEAR"]
    sample = pd.DataFrame({"ITEM_ID": ["a", "b"], "CREATION_TIMESTAMP": ["1", "2"], "GENRES": ["x|y", "z"],
                           "DESCRIPTION": ["some words", "more words"], "YEAR": ["1999", "2001"]})
    schema = infer_schema(C.ITEMS, header, sample)
    got = {f.name: (f.type, f.nullable, f.categorical, f.textual) for f in schema.fields}
    assert got == {"ITEM_ID": ("string", False, False, False), "CREATION_TIMESTAMP": ("long", False, False, False),
                   "GENRES": ("string", True, True, False), "DESCRIPTION": ("string", True, False, True),
                   "YEAR": ("float", True, False, False)}
    assert [f.name for f in schema.metadata_fields] == ["GENRES", "DESCRIPTION", "YEAR"]


def test_infer_description_is_not_textual_in_users():
    sample = pd.DataFrame({"USER_ID": ["u"], "DESCRIPTION": ["likes films"]})
    schema = infer_schema(C.USERS, ["USER_ID", "DESCRIPTION"], sample)
    assert schema.get("DESCRIPTION") == Field("DESCRIPTION", "string", nullable=True, categorical=True)
