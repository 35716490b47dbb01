"""Property-based tests (hypothesis) of the CSV / Parquet import and the schema reader: whatever the bytes,
an import either gives exactly the rows a reference reading gives, or refuses with an InputError naming the
file (and, for a bad value, the line or row and the column where it is); never another exception, never a
silently different row count.

The references written here:
- well-formed files are written by Python's csv module from rows the strategy chose (BOM or none, LF or
  CRLF, minimal or full quoting, blank lines between records, newlines inside quoted fields), so the rows
  to expect are the strategy's own;
- a value is a number when, stripped, it reads as a decimal number (`NUMBER` below); an integer field
  takes numbers with no fraction; a TIMESTAMP is in epoch seconds (magnitude below 10^11); an id is 1 to
  256 characters;
- the line of a record is the line it starts on (the header is line 1; a quoted newline makes a record
  span lines); a Parquet row is counted from 1;
- for arbitrary bytes, Python's csv module reading the same bytes as UTF-8 (BOM skipped) says how many
  records there are and what their ids are.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalize_torch.data import constants as C
from personalize_torch.data.csv_import import read_dataset_csv
from personalize_torch.data.import_jobs import import_dataset, load_group_directory
from personalize_torch.data.parquet_import import read_dataset_parquet
from personalize_torch.data.schema import load_schema, parse_schema
from personalize_torch.errors import InputError

SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
MAX_EPOCH = 10**11
SCHEMA = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
          "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                     {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_VALUE", "type": ["null", "float"]},
                     {"name": "DEVICE", "type": ["null", "string"], "categorical": True}]}
COLUMNS = [f["name"] for f in SCHEMA["fields"]]

# Text with what trips CSV readers: separators, quotes, newlines, pipes, spaces, non-ASCII, NUL.
NASTY = st.sampled_from(list('abcXYZ019 ,"\n|;\t\x00') + ["é", "日", "😀", "\u2028", "\ufeff"])
ids = st.text(NASTY, min_size=1, max_size=12)
timestamps = st.integers(-MAX_EPOCH + 1, MAX_EPOCH - 1)


@st.composite
def timestamp_text(draw) -> tuple[str, int]:
    """A valid TIMESTAMP as one of the ways it may be written, and its value."""
    value = draw(timestamps)
    form = draw(st.sampled_from(["plain", "fraction", "spaces", "plus", "exponent"]))
    if form == "fraction":
        return f"{value}.0", value
    if form == "spaces":
        return f" {value} ", value
    if form == "plus" and value >= 0:
        return f"+{value}", value
    if form == "exponent" and value % 1000 == 0:
        return f"{value // 1000}e3", value
    return str(value), value


@st.composite
def rows(draw, min_size: int = 1, max_size: int = 8) -> list[dict]:
    """Interactions rows: each column's text as written and the value an import must give."""
    out = []
    for _ in range(draw(st.integers(min_size, max_size))):
        text, value = draw(timestamp_text())
        event_value = draw(st.none() | st.floats(allow_nan=False, allow_infinity=False, width=64))
        device = draw(st.none() | ids)
        out.append({"USER_ID": draw(ids), "ITEM_ID": draw(ids), "TIMESTAMP": (text, value),
                    "EVENT_VALUE": ("" if event_value is None else repr(event_value), event_value),
                    "DEVICE": ("" if device is None else device, device)})
    return out


@st.composite
def layouts(draw) -> dict:
    return {"bom": draw(st.booleans()), "terminator": draw(st.sampled_from(["\n", "\r\n"])),
            "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
            "blank_before": draw(st.lists(st.booleans(), min_size=8, max_size=8))}


def cell(row: dict, name: str) -> str:
    value = row[name]
    return value if isinstance(value, str) else value[0]


def write_csv(records: list[list[str]], layout: dict) -> tuple[bytes, list[int]]:
    """The file's bytes and the line each record starts on."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=layout["terminator"], quoting=layout["quoting"])
    writer.writerow(COLUMNS)
    lines = []
    for i, record in enumerate(records):
        if layout["blank_before"][i % 8]:
            buf.write(layout["terminator"])
        lines.append(buf.getvalue().count("\n") + 1)
        writer.writerow(record)
    return ("\ufeff" if layout["bom"] else "").encode() + buf.getvalue().encode("utf-8"), lines


def read(path: Path, reader=read_dataset_csv):
    """(DataFrame, None) or (None, InputError); any other exception fails the test."""
    try:
        return reader(path, C.INTERACTIONS, parse_schema(SCHEMA, source="schema.json"))[0], None
    except InputError as err:
        assert err.file == str(path), err
        return None, err


def assert_rows_equal(frame: pd.DataFrame, expected: list[dict]) -> None:
    assert len(frame) == len(expected)
    for name in ("USER_ID", "ITEM_ID"):
        assert frame[name].astype(str).tolist() == [r[name] for r in expected]
    assert frame["TIMESTAMP"].tolist() == [r["TIMESTAMP"][1] for r in expected]
    got = frame["EVENT_VALUE"].tolist()
    for value, r in zip(got, expected):
        assert (math.isnan(value) if r["EVENT_VALUE"][1] is None else value == r["EVENT_VALUE"][1])
    assert [None if pd.isna(v) else v for v in frame["DEVICE"].astype(object)] == [r["DEVICE"][1] for r in expected]


# ---------------------------------------------------------------- CSV: well-formed files

@settings(max_examples=50, **SETTINGS)
@given(rows(), layouts())
def test_a_well_formed_csv_imports_exactly_its_rows(data, layout):
    content, _ = write_csv([[cell(r, n) for n in COLUMNS] for r in data], layout)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "interactions.csv"
        path.write_bytes(content)
        frame, err = read(path)
    assert err is None, err
    assert_rows_equal(frame, data)


# ---------------------------------------------------------------- CSV: one bad value

BAD_VALUES = {
    "TIMESTAMP": ["yesterday", "0x1F", "1_000", "nan", "inf", "1.5", "1600000000000", "1e30",
                  "99999999999999999999999", "", "١٢"],
    "USER_ID": ["", "u" * 257, "日" * 257],
    "ITEM_ID": ["", "i" * 300],
    "EVENT_VALUE": ["much", "nan", "-inf", "1e400", "1,5"],
}


@settings(max_examples=60, **SETTINGS)
@given(rows(min_size=1, max_size=6), layouts(), st.data())
def test_a_bad_value_is_refused_naming_its_line_and_column(data, layout, draw):
    records = [[cell(r, n) for n in COLUMNS] for r in data]
    at = draw.draw(st.integers(0, len(records) - 1), label="row")
    fault = draw.draw(st.sampled_from(sorted(BAD_VALUES) + ["missing field", "extra field"]), label="fault")
    if fault == "missing field":
        records[at] = records[at][:-1]
    elif fault == "extra field":
        records[at] = records[at] + ["surplus"]
    else:
        records[at][COLUMNS.index(fault)] = draw.draw(st.sampled_from(BAD_VALUES[fault]), label="value")
    content, lines = write_csv(records, layout)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "interactions.csv"
        path.write_bytes(content)
        frame, err = read(path)
    assert frame is None, f"accepted a file with a bad value at line {lines[at]}"
    assert err.line == lines[at], err
    assert err.column == (None if fault.endswith("field") else fault), err


# ---------------------------------------------------------------- CSV: arbitrary bytes

def reference_records(content: bytes) -> list[list[str]] | None:
    """What Python's csv module reads from the bytes: the records after the header, blank lines skipped;
    None when it cannot (not UTF-8, a NUL...)."""
    try:
        text = content.decode("utf-8-sig")
        records = list(csv.reader(io.StringIO(text, newline="")))
    except (UnicodeDecodeError, csv.Error):
        return None
    return [r for r in records[1:] if r]


@st.composite
def damaged_files(draw) -> bytes:
    """Bytes around a valid file: random bytes, the file in another encoding, cut short, with bytes
    flipped or with text of CSV's special characters spliced in."""
    kind = draw(st.sampled_from(["random", "encoding", "cut", "flip", "splice"]))
    if kind == "random":
        return draw(st.binary(max_size=200))
    data = draw(rows(max_size=5))
    content, _ = write_csv([[cell(r, n) for n in COLUMNS] for r in data], draw(layouts()))
    if kind == "encoding":
        text = content.decode("utf-8")
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]))
        return text.encode(encoding, errors="replace")
    if kind == "cut":
        return content[:draw(st.integers(0, len(content)))]
    if kind == "flip":
        at = draw(st.integers(0, len(content) - 1))
        return content[:at] + bytes([draw(st.integers(0, 255))]) + content[at + 1:]
    at = draw(st.integers(len(",".join(COLUMNS)) + 1, len(content)))
    splice = draw(st.text(st.sampled_from(list(',"\r\n a1')), min_size=1, max_size=6)).encode()
    return content[:at] + splice + content[at:]


@settings(max_examples=120, **SETTINGS)
@given(damaged_files())
def test_any_bytes_give_a_named_error_or_what_the_csv_module_reads(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "interactions.csv"
        path.write_bytes(content)
        frame, err = read(path)
    if err is not None:
        n_lines = content.count(b"\n") + content.count(b"\r") + 2
        assert err.line is None or 1 <= err.line <= n_lines, err
        return
    expected = reference_records(content)
    assert expected is not None, "imported a file Python's csv module cannot read"
    assert len(frame) == len(expected)
    assert frame["USER_ID"].astype(str).tolist() == [r[0] for r in expected]
    assert frame["TIMESTAMP"].tolist() == [int(float(r[2])) for r in expected]


# ---------------------------------------------------------------- Items / Users: duplicate ids

@settings(max_examples=15, **SETTINGS)
@given(st.lists(st.tuples(st.sampled_from(["i1", "i2", "i3", "i4"]), st.sampled_from(["a", "b|c", "d"])),
                min_size=1, max_size=8),
       st.lists(st.tuples(st.sampled_from(["i1", "i5"]), st.sampled_from(["e", "f"])), min_size=1, max_size=4),
       st.sampled_from(["FULL", "INCREMENTAL"]))
def test_duplicate_item_ids_keep_the_last_row(first, second, mode):
    """Every row is read; stored, an id's last row wins (INCREMENTAL: over the stored one too)."""
    with tempfile.TemporaryDirectory() as tmp:
        group, tmp = Path(tmp) / "group", Path(tmp)
        (tmp / "i.csv").write_text("USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\n")
        import_dataset(group, C.INTERACTIONS, tmp / "i.csv")
        expected = {}
        for name, batch, batch_mode in (("a.csv", first, "FULL"), ("b.csv", second, mode)):
            (tmp / name).write_text("ITEM_ID,GENRES\n" + "".join(f"{i},{g}\n" for i, g in batch))
            if batch_mode == "FULL":
                expected = {}
            expected.update(dict(batch))
            record = import_dataset(group, C.ITEMS, tmp / name, mode=batch_mode)
            assert record["rows_read"] == len(batch)
            assert record["rows_stored"] == len(expected)
        items = load_group_directory(group).items
    assert dict(zip(items[C.ITEM_ID].astype(str), items["GENRES"].astype(str))) == expected
    assert len(items) == len(expected)


# ---------------------------------------------------------------- Parquet

@st.composite
def parquet_columns(draw, data: list[dict]) -> dict[str, pa.Array]:
    """The rows as Parquet columns: ids as strings, dictionary-encoded strings or binary; TIMESTAMP as
    int64, int32 where it fits, integral float64 or text; EVENT_VALUE as float64 or text."""
    users = pa.array([r["USER_ID"] for r in data], pa.string())
    form = draw(st.sampled_from(["string", "dictionary", "binary"]))
    users = {"string": users, "dictionary": users.dictionary_encode(),
             "binary": users.cast(pa.binary())}[form]
    values = [r["TIMESTAMP"][1] for r in data]
    ts_form = draw(st.sampled_from(["int64", "int32", "float64", "string"]))
    if ts_form == "int32" and max(abs(v) for v in values) >= 2**31:
        ts_form = "int64"
    timestamps = (pa.array([r["TIMESTAMP"][0] for r in data], pa.string()) if ts_form == "string"
                  else pa.array(values, getattr(pa, ts_form)()))
    event_values = pa.array([r["EVENT_VALUE"][1] for r in data], pa.float64())
    if draw(st.booleans()):
        event_values = pa.array([r["EVENT_VALUE"][0] or None for r in data], pa.string())
    return {"USER_ID": users, "ITEM_ID": pa.array([r["ITEM_ID"] for r in data]), "TIMESTAMP": timestamps,
            "EVENT_VALUE": event_values, "DEVICE": pa.array([r["DEVICE"][1] for r in data], pa.string())}


@settings(max_examples=40, **SETTINGS)
@given(rows(), st.data())
def test_a_parquet_file_imports_exactly_its_rows_or_names_the_bad_row(data, draw):
    columns = draw.draw(parquet_columns(data), label="columns")
    bad_at = draw.draw(st.none() | st.integers(0, len(data) - 1), label="bad row")
    if bad_at is not None:
        fault = draw.draw(st.sampled_from(["TIMESTAMP", "USER_ID", "binary"]), label="fault")
        if fault == "TIMESTAMP":
            values = [r["TIMESTAMP"][1] for r in data]
            values[bad_at] = draw.draw(st.sampled_from([MAX_EPOCH * 10, -(2**62)]), label="timestamp")
            columns["TIMESTAMP"] = pa.array(values, pa.int64())
        elif fault == "USER_ID":
            values = [r["USER_ID"] for r in data]
            values[bad_at] = draw.draw(st.sampled_from([None, "u" * 257]), label="user")
            columns["USER_ID"] = pa.array(values, pa.string())
        else:
            values = [r["USER_ID"].encode() for r in data]
            values[bad_at] = b"\xff\xfe"
            columns["USER_ID"] = pa.array(values, pa.binary())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "interactions.parquet"
        pq.write_table(pa.table(columns), path, row_group_size=draw.draw(st.integers(1, 4), label="row group"))
        frame, err = read(path, read_dataset_parquet)
    if bad_at is None:
        assert err is None, err
        assert_rows_equal(frame, data)
    else:
        assert frame is None
        assert err.column == (fault if fault != "binary" else "USER_ID"), err
        assert f"row {bad_at + 1}:" in err.message, err


@settings(max_examples=40, **SETTINGS)
@given(rows(min_size=3), st.data())
def test_a_damaged_parquet_file_is_refused_by_name(data, draw):
    """Damage is refused naming the file or, where Parquet cannot see it, the rows are all there; with page
    checksums (verified when a file has them), changed values are refused too."""
    columns = draw.draw(parquet_columns(data), label="columns")
    checksums = draw.draw(st.booleans(), label="page checksums")
    buf = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), buf, write_page_checksum=checksums)
    content = buf.getvalue().to_pybytes()
    at = draw.draw(st.integers(0, len(content) - 1), label="at")
    damage = draw.draw(st.sampled_from(["cut", "zero", "flip"]), label="damage")
    if damage == "cut":
        content = content[:at]
    else:
        span = draw.draw(st.integers(1, 64), label="span")
        replace = bytes(span) if damage == "zero" else bytes(b ^ 0xFF for b in content[at:at + span])
        content = content[:at] + replace[:len(content) - at] + content[at + span:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "interactions.parquet"
        path.write_bytes(content)
        frame, err = read(path, read_dataset_parquet)
    if err is None:
        assert len(frame) == len(data)
        if checksums:
            assert_rows_equal(frame, data)


# ---------------------------------------------------------------- the schema reader

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
FIELD = st.fixed_dictionaries(
    {"name": st.sampled_from(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "GENRES", "PRICE", "a b", "", "9x"]),
     "type": st.sampled_from(["string", "long", "int", "float", "double", "boolean", "bytes", ["null", "string"],
                              ["null", "long"], ["null", "float", "int"], {"type": "array"}, ["null"], 5])},
    optional={"categorical": JSON, "textual": JSON, "doc": JSON})


@st.composite
def schema_documents(draw) -> bytes:
    kind = draw(st.sampled_from(["record", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=100))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    record = {"type": draw(st.sampled_from(["record", "record", "enum", 1])),
              "name": draw(st.sampled_from(["Interactions", "Items", "Users", "Other", None, ["Items"]])),
              "fields": draw(st.lists(FIELD, max_size=6) | JSON)}
    text = json.dumps(record)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return text.encode(encoding)


@settings(max_examples=100, **SETTINGS)
@given(schema_documents())
def test_a_schema_file_is_read_or_refused_by_name(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "schema.json"
        path.write_bytes(content)
        try:
            schema = load_schema(path)
        except InputError as err:
            assert err.file == str(path), err
            return
    again = parse_schema(schema.to_avro(), source="again")      # what it read is a schema it would write
    assert again.to_avro() == schema.to_avro()
    assert schema.dataset_type in C.DATASET_TYPES
    for name, allowed in C.REQUIRED_FIELDS[schema.dataset_type].items():
        assert schema.get(name) is not None and schema.get(name).type in allowed and not schema.get(name).nullable


@pytest.mark.parametrize("text, line", [
    ("USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\nu2,i2,2\nu\xff3,i3,3\n", 4),
    ('USER_ID,ITEM_ID,TIMESTAMP\n"u\n1",i1,1\nu\xe9,i2,2\n', 4),
])
def test_text_that_is_not_utf8_is_refused_at_its_line(tmp_path, text, line):
    path = tmp_path / "interactions.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8") as err:
        read_dataset_csv(path, C.INTERACTIONS)
    assert err.value.line == line
