"""Personalize dataset schemas: Avro JSON records, parsed, checked, or inferred from a CSV header.

A schema is the JSON Personalize takes in CreateSchema, e.g.
`{"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
"fields": [{"name": "USER_ID", "type": "string"}, ...], "version": "1.0"}`.
Field types are Avro primitives (`string`, `int`, `long`, `float`, `double`, `boolean`) or a union
with `null` (`["null", "string"]`), which makes the field nullable. String fields may carry
`"categorical": true` (values may be `|`-separated lists) or, in Items, `"textual": true` (one field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from personalize_torch.data import constants as C
from personalize_torch.errors import InputError, read_json_file

PRIMITIVE_TYPES = ("string", "int", "long", "float", "double", "boolean")
NUMERIC_TYPES = ("int", "long", "float", "double")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Field:
    name: str
    type: str  # one of PRIMITIVE_TYPES
    nullable: bool = False
    categorical: bool = False
    textual: bool = False

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    def to_avro(self) -> dict:
        out: dict = {"name": self.name, "type": ["null", self.type] if self.nullable else self.type}
        if self.categorical:
            out["categorical"] = True
        if self.textual:
            out["textual"] = True
        return out


@dataclass
class Schema:
    dataset_type: str  # Interactions, Items or Users
    fields: list[Field] = field(default_factory=list)
    source: str = "<schema>"

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def get(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def metadata_fields(self) -> list[Field]:
        """Fields that are neither ids nor reserved keywords: item/user metadata or event context."""
        reserved = set(C.REQUIRED_FIELDS[self.dataset_type]) | set(C.RESERVED_OPTIONAL_FIELDS[self.dataset_type])
        return [f for f in self.fields if f.name not in reserved]

    def to_avro(self) -> dict:
        return {
            "type": "record",
            "name": self.dataset_type,
            "namespace": "com.amazonaws.personalize.schema",
            "fields": [f.to_avro() for f in self.fields],
            "version": "1.0",
        }


def _parse_type(raw, source: str, name: str) -> tuple[str, bool]:
    if isinstance(raw, str):
        types = [raw]
    elif isinstance(raw, list):
        types = raw
    else:
        raise InputError(f"field {name!r}: type must be a string or a list, got {raw!r}", file=source)
    non_null = [t for t in types if t != "null"]
    if len(non_null) != 1:
        raise InputError(f"field {name!r}: a union type must be [\"null\", <type>], got {raw!r}", file=source)
    (avro_type,) = non_null
    if avro_type not in PRIMITIVE_TYPES:
        raise InputError(
            f"field {name!r}: unknown type {avro_type!r}; expected one of {', '.join(PRIMITIVE_TYPES)}",
            file=source,
        )
    return avro_type, "null" in types


def parse_schema(obj: dict, dataset_type: str | None = None, source: str = "<schema>") -> Schema:
    """Check a Personalize schema dict and return a Schema. `dataset_type` defaults to the record name."""
    if not isinstance(obj, dict) or obj.get("type") != "record" or not isinstance(obj.get("fields"), list):
        raise InputError('a schema must be an Avro record: {"type": "record", "fields": [...]}', file=source)
    dataset_type = dataset_type or obj.get("name")
    if dataset_type not in C.DATASET_TYPES:
        raise InputError(
            f"unknown dataset type {dataset_type!r}; expected one of {', '.join(C.DATASET_TYPES)}", file=source
        )
    fields: list[Field] = []
    seen: set[str] = set()
    for raw in obj["fields"]:
        if not isinstance(raw, dict) or "name" not in raw or "type" not in raw:
            raise InputError(f"every field needs a name and a type, got {raw!r}", file=source)
        name = raw["name"]
        if not isinstance(name, str) or not FIELD_NAME.match(name):
            raise InputError(f"invalid field name {name!r}: use letters, digits and underscores", file=source)
        if name in seen:
            raise InputError(f"duplicate field {name!r}", file=source, column=name)
        seen.add(name)
        avro_type, nullable = _parse_type(raw["type"], source, name)
        categorical = bool(raw.get("categorical", False))
        textual = bool(raw.get("textual", False))
        if (categorical or textual) and avro_type != "string":
            raise InputError(f"field {name!r}: only string fields can be categorical or textual", file=source)
        if textual and dataset_type != C.ITEMS:
            raise InputError(f"field {name!r}: textual fields are allowed only in Items", file=source)
        fields.append(Field(name, avro_type, nullable, categorical, textual))
    schema = Schema(dataset_type, fields, source)
    _check_reserved(schema)
    return schema


def _check_reserved(schema: Schema) -> None:
    source = schema.source
    for name, allowed in C.REQUIRED_FIELDS[schema.dataset_type].items():
        f = schema.get(name)
        if f is None:
            raise InputError(f"{schema.dataset_type} schema needs a {name} field", file=source)
        if f.type not in allowed:
            raise InputError(f"field {name} must be of type {' or '.join(allowed)}, not {f.type}", file=source)
        if f.nullable:
            raise InputError(f"field {name} is required and cannot be nullable", file=source)
    for name, allowed in C.RESERVED_OPTIONAL_FIELDS[schema.dataset_type].items():
        f = schema.get(name)
        if f is not None and f.type not in allowed:
            raise InputError(f"reserved field {name} must be of type {' or '.join(allowed)}, not {f.type}",
                             file=source)
    if sum(f.textual for f in schema.fields) > 1:
        raise InputError("at most one textual field is allowed", file=source)
    if schema.dataset_type in (C.ITEMS, C.USERS) and not schema.metadata_fields:
        raise InputError(f"an {schema.dataset_type} schema needs at least one metadata field", file=source)


def load_schema(path: str | Path, dataset_type: str | None = None) -> Schema:
    return parse_schema(read_json_file(path, "schema file"), dataset_type, source=str(path))


# Types Personalize's reserved names get when a schema is inferred from a header.
_RESERVED_INFERRED = {
    C.USER_ID: "string", C.ITEM_ID: "string", C.TIMESTAMP: "long", C.EVENT_TYPE: "string",
    C.EVENT_VALUE: "float", C.IMPRESSION: "string", C.RECOMMENDATION_ID: "string",
    C.CREATION_TIMESTAMP: "long",
}


def infer_schema(dataset_type: str, header: list[str], sample, source: str = "<csv>") -> Schema:
    """Infer a schema from a CSV header and a sample of its rows (a DataFrame of strings).

    Reserved names get Personalize's types; other columns are numeric (`float`, nullable) when every
    non-empty sampled value parses as a number, else categorical strings (`|` multi-values allowed),
    except an Items column literally named DESCRIPTION or TEXT, which is the textual field.
    """
    import pandas as pd

    fields = []
    for name in header:
        if name in _RESERVED_INFERRED:
            fields.append(Field(name, _RESERVED_INFERRED[name]))
            continue
        values = sample[name].dropna()
        values = values[values.astype(str).str.len() > 0]
        numeric = pd.to_numeric(values, errors="coerce")
        if len(values) and numeric.notna().all():
            fields.append(Field(name, "float", nullable=True))
        elif dataset_type == C.ITEMS and name.upper() in ("DESCRIPTION", "TEXT"):
            fields.append(Field(name, "string", nullable=True, textual=True))
        else:
            fields.append(Field(name, "string", nullable=True, categorical=True))
    # Required fields are checked against the CSV header by the reader, with the file's name.
    return Schema(dataset_type, fields, source)
