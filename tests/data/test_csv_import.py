"""Personalize CSV import: typed DataFrames from good files, InputError with file/line/column for bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personalize_torch.data import constants as C
from personalize_torch.data.csv_import import MAX_ID_LENGTH, read_dataset_csv
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.schema import load_schema
from personalize_torch.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "data" / "amazon_personalize"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} is absent")


def _record(name: str, fields: list[dict]) -> dict:
    return {"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
            "fields": fields, "version": "1.0"}


INTERACTIONS_SCHEMA = _record("Interactions", [
    {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
    {"name": "EVENT_VALUE", "type": ["null", "float"]}, {"name": "IMPRESSION", "type": ["null", "string"]},
    {"name": "DEVICE", "type": ["null", "string"], "categorical": True}])

INTERACTIONS_CSV = (
    "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,IMPRESSION,DEVICE\n"
    "007,a,1600000000,click,1.5,a|b|c,phone\n"
    "u2,b,1600000100,purchase,2,b|c,\n"
    "u2,c,1600000200,click,0.25,c,tablet\n")


def _csv(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _schema(tmp_path: Path, obj: dict, name: str = "schema.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


def _error(path: Path, dataset_type: str = C.INTERACTIONS, schema=None) -> InputError:
    with pytest.raises(InputError) as info:
        read_dataset_csv(path, dataset_type, schema)
    err = info.value
    assert err.file == str(path)
    return err


def _check_interactions(df: pd.DataFrame) -> None:
    assert list(df.columns) == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION",
                                "DEVICE"]
    for col in ("USER_ID", "ITEM_ID", "EVENT_TYPE", "DEVICE"):   # ids and event strings: stored as codes
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    assert isinstance(df["IMPRESSION"].dtype, pd.StringDtype)
    assert df["TIMESTAMP"].dtype == np.int64
    assert df["EVENT_VALUE"].dtype == np.float64
    assert df["USER_ID"].tolist() == ["007", "u2", "u2"]  # ids stay strings: leading zeros kept
    assert df["ITEM_ID"].tolist() == ["a", "b", "c"]
    assert df["TIMESTAMP"].tolist() == [1600000000, 1600000100, 1600000200]
    assert df["EVENT_TYPE"].tolist() == ["click", "purchase", "click"]
    assert df["EVENT_VALUE"].tolist() == [1.5, 2.0, 0.25]
    assert df["IMPRESSION"].tolist() == ["a|b|c", "b|c", "c"]
    assert df["DEVICE"].iloc[0] == "phone" and df["DEVICE"].iloc[2] == "tablet"
    assert df["DEVICE"].isna().tolist() == [False, True, False]
    assert df.index.tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- good files


def test_interactions_with_schema(tmp_path):
    path = _csv(tmp_path, INTERACTIONS_CSV)
    schema_path = _schema(tmp_path, INTERACTIONS_SCHEMA)
    df, schema = read_dataset_csv(path, C.INTERACTIONS, schema_path)
    _check_interactions(df)
    assert schema.source == str(schema_path)
    assert schema.get("DEVICE").categorical


def test_interactions_with_schema_object(tmp_path):
    path = _csv(tmp_path, INTERACTIONS_CSV)
    schema = load_schema(_schema(tmp_path, INTERACTIONS_SCHEMA))
    df, got = read_dataset_csv(path, C.INTERACTIONS, schema)
    _check_interactions(df)
    assert got is schema


def test_interactions_without_schema(tmp_path):
    path = _csv(tmp_path, INTERACTIONS_CSV)
    df, schema = read_dataset_csv(path, C.INTERACTIONS)
    _check_interactions(df)
    assert schema.source == str(path)
    assert schema.get("TIMESTAMP").type == "long"
    assert schema.get("EVENT_VALUE").type == "float"
    assert schema.get("DEVICE").categorical and schema.get("DEVICE").nullable


def test_empty_event_value(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\nu1,a,5,click,1\nu2,b,6,click,\n")
    # nullable in the schema: a missing value
    df, _ = read_dataset_csv(path, C.INTERACTIONS, _schema(tmp_path, INTERACTIONS_SCHEMA))
    assert df["EVENT_VALUE"].iloc[0] == 1.0 and np.isnan(df["EVENT_VALUE"].iloc[1])
    # inferred: EVENT_VALUE gets Personalize's type, a required float
    err = _error(path)
    assert (err.line, err.column) == (3, "EVENT_VALUE")


def test_nullable_schema_field_absent_from_header_is_filled_with_missing(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,a,5,click\nu2,b,6,click\n")
    df, _ = read_dataset_csv(path, C.INTERACTIONS, _schema(tmp_path, INTERACTIONS_SCHEMA))
    assert df["EVENT_VALUE"].dtype == np.float64 and df["EVENT_VALUE"].isna().all()
    assert df["IMPRESSION"].isna().all() and df["DEVICE"].isna().all()
    assert df["TIMESTAMP"].tolist() == [5, 6]


def test_bom_header_spaces_crlf_and_quoted_ids(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes('\ufeffUSER_ID, ITEM_ID ,TIMESTAMP\r\n"u,1",a,5\r\nNA,null,6\r\n'.encode())
    df, _ = read_dataset_csv(path, C.INTERACTIONS)
    assert list(df.columns) == ["USER_ID", "ITEM_ID", "TIMESTAMP"]
    assert df["USER_ID"].tolist() == ["u,1", "NA"]  # "NA" and "null" are ids, not missing values
    assert df["ITEM_ID"].tolist() == ["a", "null"]
    assert df["TIMESTAMP"].tolist() == [5, 6]


def test_items_multi_value_creation_timestamp_textual(tmp_path):
    path = _csv(tmp_path,
                "ITEM_ID,GENRES,CREATION_TIMESTAMP,DESCRIPTION,PRICE\n"
                'i1,Comedy|Drama,1500000000,"A film, with commas",9.99\n'
                "i2,Horror,1500000100,,\n"
                "i3,,1500000200,Short text,3\n")
    schema_path = _schema(tmp_path, _record("Items", [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True},
        {"name": "CREATION_TIMESTAMP", "type": "long"},
        {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
        {"name": "PRICE", "type": ["null", "double"]}]))
    for schema in (schema_path, None):
        df, got = read_dataset_csv(path, C.ITEMS, schema)
        assert got.dataset_type == C.ITEMS
        assert got.get("DESCRIPTION").textual and got.get("GENRES").categorical
        assert df["ITEM_ID"].tolist() == ["i1", "i2", "i3"]
        assert isinstance(df["GENRES"].dtype, pd.StringDtype)
        assert df["GENRES"].iloc[0] == "Comedy|Drama"
        assert df["GENRES"].isna().tolist() == [False, False, True]
        assert df["CREATION_TIMESTAMP"].dtype == np.int64
        assert df["CREATION_TIMESTAMP"].tolist() == [1500000000, 1500000100, 1500000200]
        assert df["DESCRIPTION"].iloc[0] == "A film, with commas"
        assert df["DESCRIPTION"].isna().tolist() == [False, True, False]
        assert df["PRICE"].dtype == np.float64
        assert df["PRICE"].iloc[0] == pytest.approx(9.99) and df["PRICE"].iloc[2] == 3.0


def test_users_with_int_and_boolean(tmp_path):
    path = _csv(tmp_path, "USER_ID,AGE,VIP,MEMBERSHIP\nu1,30,TRUE,gold\nu2,,false,\nu3,41, True ,silver\n")
    schema_path = _schema(tmp_path, _record("Users", [
        {"name": "USER_ID", "type": "string"}, {"name": "AGE", "type": ["null", "int"]},
        {"name": "VIP", "type": "boolean"}, {"name": "MEMBERSHIP", "type": ["null", "string"], "categorical": True}]))
    df, schema = read_dataset_csv(path, C.USERS, schema_path)
    assert schema.dataset_type == C.USERS
    assert df["USER_ID"].tolist() == ["u1", "u2", "u3"]
    assert str(df["AGE"].dtype) == "Int64"
    assert df["AGE"].isna().tolist() == [False, True, False]
    assert df["AGE"].iloc[0] == 30 and df["AGE"].iloc[2] == 41
    assert str(df["VIP"].dtype) == "boolean"
    assert df["VIP"].tolist() == [True, False, True]
    assert df["MEMBERSHIP"].isna().tolist() == [False, True, False]


def test_users_inferred(tmp_path):
    path = _csv(tmp_path, "USER_ID,AGE,MEMBERSHIP\nu1,30,gold\nu2,,silver\n")
    df, schema = read_dataset_csv(path, C.USERS)
    assert df["AGE"].dtype == np.float64
    assert df["AGE"].iloc[0] == 30.0 and np.isnan(df["AGE"].iloc[1])
    assert schema.get("MEMBERSHIP").categorical
    assert df["MEMBERSHIP"].tolist() == ["gold", "silver"]


def test_dataset_group_from_csv(tmp_path):
    inter = _csv(tmp_path, INTERACTIONS_CSV, "inter.csv")
    items = _csv(tmp_path, "ITEM_ID,GENRES\na,x\nz,y\n", "items.csv")
    users = _csv(tmp_path, "USER_ID,AGE\n007,3\n", "users.csv")
    group = DatasetGroup.from_csv(inter, items, users)
    assert group.name == "inter"
    assert group.n_interactions == 3
    assert set(group.schemas) == {C.INTERACTIONS, C.ITEMS, C.USERS}
    assert group.catalogue_item_ids().tolist() == ["a", "b", "c", "z"]
    assert group.users["USER_ID"].tolist() == ["007"]


# --------------------------------------------------------------------------- bad files


def test_column_not_in_schema(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,RATING\nu1,a,5,click,3\n")
    err = _error(path, schema=_schema(tmp_path, INTERACTIONS_SCHEMA))
    assert (err.line, err.column) == (1, "RATING")
    assert "not in the schema" in err.message


def test_required_schema_field_missing_from_header(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,EVENT_TYPE\nu1,a,click\n")
    err = _error(path, schema=_schema(tmp_path, INTERACTIONS_SCHEMA))
    assert (err.line, err.column) == (1, "TIMESTAMP")
    assert "lacks the schema's required field" in err.message


def test_required_field_missing_without_schema(tmp_path):
    path = _csv(tmp_path, "USER_ID,TIMESTAMP\nu1,5\n")
    err = _error(path)
    assert err.line == 1
    assert "needs a ITEM_ID field" in err.message and "no schema given" in err.message


def test_schema_for_another_dataset_type(tmp_path):
    from personalize_torch.data.schema import parse_schema

    items_schema = parse_schema(_record("Items", [{"name": "ITEM_ID", "type": "string"},
                                                  {"name": "G", "type": "string"}]), source="items.json")
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\nu1,a,5\n")
    err = _error(path, schema=items_schema)
    assert "is for Items, not Interactions" in err.message


def test_non_numeric_timestamp_on_line_4(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\nu1,a,100\nu2,b,200\nu3,c,yesterday\nu4,d,400\n")
    err = _error(path)
    assert (err.line, err.column) == (4, "TIMESTAMP")
    assert "'yesterday'" in err.message
    assert str(err) == f"{path}, line 4, column TIMESTAMP: expected a number (long), got 'yesterday'"


def test_non_integer_timestamp(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\nu1,a,100\nu2,b,100.5\n")
    err = _error(path)
    assert (err.line, err.column) == (3, "TIMESTAMP")
    assert "expected an integer" in err.message and "'100.5'" in err.message


def test_millisecond_timestamp(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\nu1,a,1600000000\nu2,b,1600000000\nu3,c,1600000000123\n")
    err = _error(path)
    assert (err.line, err.column) == (4, "TIMESTAMP")
    assert "1600000000123 is not in epoch seconds" in err.message


def test_millisecond_creation_timestamp(tmp_path):
    path = _csv(tmp_path, "ITEM_ID,CREATION_TIMESTAMP,GENRE\ni1,1600000000000,x\n")
    err = _error(path, C.ITEMS)
    assert (err.line, err.column) == (2, "CREATION_TIMESTAMP")


def test_empty_required_user_id(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\nu1,a,100\n,b,200\n")
    err = _error(path)
    assert (err.line, err.column) == (3, "USER_ID")
    assert err.message == "empty value in a required field"


def test_empty_required_field_with_schema(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,a,100,click\nu2,b,200,click\nu3,c,300,\n")
    err = _error(path, schema=_schema(tmp_path, INTERACTIONS_SCHEMA))
    assert (err.line, err.column) == (4, "EVENT_TYPE")


def test_empty_file(tmp_path):
    path = _csv(tmp_path, "")
    err = _error(path)
    assert err.line is None and err.column is None
    assert "file is empty" in err.message


def test_header_only(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\n")
    err = _error(path)
    assert (err.line, err.column) == (2, None)
    assert err.message == "no data rows after the header"


def test_duplicate_header_column(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP,ITEM_ID\nu1,a,5,b\n")
    err = _error(path)
    assert (err.line, err.column) == (1, "ITEM_ID")
    assert "duplicate column" in err.message


def test_unnamed_header_column(tmp_path):
    path = _csv(tmp_path, "USER_ID,,TIMESTAMP\nu1,a,5\n")
    err = _error(path)
    assert err.line == 1
    assert "column 2 of the header has no name" in err.message


def test_missing_file(tmp_path):
    err = _error(tmp_path / "nope.csv")
    assert err.message == "file not found"


@pytest.mark.parametrize("column", ["USER_ID", "ITEM_ID"])
def test_id_longer_than_256_characters(tmp_path, column):
    long_id = "x" * (MAX_ID_LENGTH + 1)
    ok_id = "y" * MAX_ID_LENGTH  # exactly 256 is allowed
    row = {"USER_ID": "u2", "ITEM_ID": "b"}
    row[column] = long_id
    text = f"USER_ID,ITEM_ID,TIMESTAMP\n{ok_id},{ok_id},1\nu1,a,2\n{row['USER_ID']},{row['ITEM_ID']},3\n"
    path = _csv(tmp_path, text)
    err = _error(path)
    assert (err.line, err.column) == (4, column)
    assert "at most 256 characters" in err.message


def test_non_numeric_value_in_float_field(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\nu1,a,1,click,1.0\nu2,b,2,click,high\n")
    err = _error(path, schema=_schema(tmp_path, INTERACTIONS_SCHEMA))
    assert (err.line, err.column) == (3, "EVENT_VALUE")
    assert "expected a number (float), got 'high'" in err.message


def test_non_numeric_value_in_inferred_float_field(tmp_path):
    # EVENT_VALUE is always a float when inferred, whatever its values
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE\nu1,a,1,1.0\nu2,b,2,n/a\n")
    err = _error(path)
    assert (err.line, err.column) == (3, "EVENT_VALUE")


def test_bad_boolean(tmp_path):
    path = _csv(tmp_path, "USER_ID,VIP\nu1,true\nu2,false\nu3,yes\n")
    schema = _schema(tmp_path, _record("Users", [{"name": "USER_ID", "type": "string"},
                                                 {"name": "VIP", "type": "boolean"}]))
    err = _error(path, C.USERS, schema)
    assert (err.line, err.column) == (4, "VIP")
    assert err.message == "expected true or false, got 'yes'"


def test_non_integer_in_int_metadata_field(tmp_path):
    path = _csv(tmp_path, "ITEM_ID,YEAR\ni1,1999\ni2,2006-2007\n")
    schema = _schema(tmp_path, _record("Items", [{"name": "ITEM_ID", "type": "string"},
                                                 {"name": "YEAR", "type": ["null", "int"]}]))
    err = _error(path, C.ITEMS, schema)
    assert (err.line, err.column) == (3, "YEAR")


def test_line_number_after_a_blank_line(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\nu1,a,100\n\nu2,b,yesterday\n")
    err = _error(path)
    assert (err.line, err.column) == (4, "TIMESTAMP")


def test_line_number_after_a_multi_line_quoted_field(tmp_path):
    path = _csv(tmp_path, 'ITEM_ID,DESCRIPTION,YEAR\ni1,"two\nlines",1999\ni2,ok,soon\n')
    schema = _schema(tmp_path, _record("Items", [
        {"name": "ITEM_ID", "type": "string"}, {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
        {"name": "YEAR", "type": ["null", "int"]}]))
    err = _error(path, C.ITEMS, schema)
    assert (err.line, err.column) == (4, "YEAR")


def test_row_with_too_many_fields_names_its_line(tmp_path):
    path = _csv(tmp_path, "USER_ID,ITEM_ID,TIMESTAMP\nu1,a,100\nu2,b,200,extra\n")
    err = _error(path)
    assert err.line == 3


# --------------------------------------------------------------------------- the real sample CSVs


@needs_samples
@pytest.mark.real_data
def test_real_movielens_poc_interactions():
    df, schema = read_dataset_csv(SAMPLES / "movielens_poc/interactions.csv", C.INTERACTIONS,
                                  SAMPLES / "movielens_poc/schemas/interactions.schema.json")
    assert list(df.columns) == ["USER_ID", "ITEM_ID", "EVENT_TYPE", "TIMESTAMP"]
    assert len(df) == 158371
    assert df["USER_ID"].nunique() == 610
    assert df["ITEM_ID"].nunique() == 9477
    assert df["EVENT_TYPE"].value_counts().to_dict() == {"click": 96655, "watch": 61716}
    assert df["TIMESTAMP"].dtype == np.int64
    assert (df["TIMESTAMP"].min(), df["TIMESTAMP"].max()) == (828124615, 1537799250)
    assert df["TIMESTAMP"].is_monotonic_increasing
    assert df.iloc[0].tolist() == ["429", "222", "watch", 828124615]


@needs_samples
@pytest.mark.real_data
def test_real_movielens_poc_items_reports_the_empty_year():
    # item-meta.csv line 6061 is `40697,Sci-Fi,` while the schema's YEAR is a non-nullable int.
    path = SAMPLES / "movielens_poc/item-meta.csv"
    assert path.read_text(encoding="utf-8").splitlines()[6060] == "40697,Sci-Fi,"
    err = _error(path, C.ITEMS, SAMPLES / "movielens_poc/schemas/items.schema.json")
    assert (err.line, err.column) == (6061, "YEAR")
    assert err.message == "empty value in a required field"


@needs_samples
@pytest.mark.real_data
def test_real_movielens_poc_items_inferred_reports_the_year_range():
    # Inferred from the first 1000 rows, YEAR is a float; line 9520 holds the year range '2006–2007'.
    path = SAMPLES / "movielens_poc/item-meta.csv"
    err = _error(path, C.ITEMS)
    assert (err.line, err.column) == (9520, "YEAR")
    assert "'2006–2007'" in err.message


@needs_samples
@pytest.mark.real_data
def test_real_airline_interactions():
    df, schema = read_dataset_csv(SAMPLES / "airline_marketing/df_interactions.csv", C.INTERACTIONS,
                                  SAMPLES / "airline_marketing/schemas/interactions.schema.json")
    assert list(df.columns) == ["ITEM_ID", "USER_ID", "TIMESTAMP", "CABIN_TYPE", "EVENT_TYPE", "EVENT_VALUE"]
    assert len(df) == 34853
    assert df["USER_ID"].nunique() == 24500 and df["ITEM_ID"].nunique() == 350
    assert isinstance(df["USER_ID"].dtype, pd.CategoricalDtype)
    # signed 64-bit integer ids stay exact strings
    assert df["ITEM_ID"].iloc[0] == "-2996180203100007228"
    assert df["USER_ID"].iloc[:2].tolist() == ["8120125224640029423", "-8997174881451465988"]
    assert df["EVENT_TYPE"].unique().tolist() == ["RATING"]
    assert df["EVENT_VALUE"].dtype == np.float64
    assert df["EVENT_VALUE"].iloc[:2].tolist() == [7.0, 10.0]
    assert df["CABIN_TYPE"].value_counts().to_dict() == {
        "Economy": 26429, "Business Class": 6133, "Premium Economy": 1445, "First Class": 846}
    assert df["TIMESTAMP"].dtype == np.int64
    assert int((df["TIMESTAMP"] == 0).sum()) == 1
    assert df["TIMESTAMP"].max() == 1438473600


@needs_samples
@pytest.mark.real_data
def test_real_airline_items_reports_the_shifted_row():
    # Line 353 of df_item_deduplicated.csv is `No,No,No,No,No,No,9149,...`; DurationDays is an int.
    path = SAMPLES / "airline_marketing/df_item_deduplicated.csv"
    assert path.read_text().splitlines()[352].startswith("No,No,No,No,No,No,9149,")
    err = _error(path, C.ITEMS, SAMPLES / "airline_marketing/schemas/items.schema.json")
    assert (err.line, err.column) == (353, "DurationDays")
    assert err.message == "expected a number (int), got 'No'"


@needs_samples
@pytest.mark.real_data
def test_real_airline_items_inferred():
    df, schema = read_dataset_csv(SAMPLES / "airline_marketing/df_item_deduplicated.csv", C.ITEMS)
    assert len(df) == 355
    assert schema.get("DurationDays").categorical  # it holds 'No' and '0' rows, so not numeric
    assert df["DynamicPrice"].dtype == np.float64
    assert df["DSTCity"].iloc[0] == "Hong Kong"


@needs_samples
@pytest.mark.real_data
def test_real_airline_users():
    df, schema = read_dataset_csv(SAMPLES / "airline_marketing/df_users_deduplicated.csv", C.USERS,
                                  SAMPLES / "airline_marketing/schemas/users.schema.json")
    assert list(df.columns) == ["USER_ID", "memberClass"]
    assert len(df) == 24500 and df["USER_ID"].is_unique
    assert df.iloc[1].tolist() == ["-8997174881451465988", "Gold"]
    assert isinstance(df["memberClass"].dtype, pd.StringDtype)
    assert df["memberClass"].notna().all()
    assert schema.get("memberClass").categorical
