"""Domain dataset groups (Personalize's ECOMMERCE and VIDEO_ON_DEMAND) and their use cases.

A use case (configs/use_case/<domain>/<name>.yaml) is a preset over our recipes: the recipe, the event type
it trains on, the event types and datasets the data must have, and the filter its recommendations always
apply (e.g. "recommended for you" never recommends what the user bought). `check_use_case` validates a
dataset group against the domain and the use case at import time and resolves the event type as the data
spells it (domain event types match case-insensitively: data with `watch` serves a use case that asks for
`Watch`).

DOMAIN_SCHEMAS are the preset schemas (Personalize's domain fields), valid Avro schemas for our import:
`python -m personalize_torch.data.domains --domain ECOMMERCE --out schemas/` writes them out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from personalize_torch.data import constants as C
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.errors import InputError


def _schema(name: str, fields: list[tuple[str, object, dict]]) -> dict:
    return {"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
            "fields": [{"name": n, "type": t, **extra} for n, t, extra in fields], "version": "1.0"}


_OPTIONAL_STRING = ["null", "string"]
DOMAIN_SCHEMAS: dict[str, dict[str, dict]] = {
    "ECOMMERCE": {
        C.INTERACTIONS: _schema("Interactions", [(C.USER_ID, "string", {}), (C.ITEM_ID, "string", {}),
                                                 (C.TIMESTAMP, "long", {}), (C.EVENT_TYPE, "string", {}),
                                                 (C.EVENT_VALUE, ["null", "float"], {})]),
        C.ITEMS: _schema("Items", [(C.ITEM_ID, "string", {}), ("PRICE", "float", {}),
                                   ("CATEGORY_L1", "string", {"categorical": True}),
                                   ("CATEGORY_L2", _OPTIONAL_STRING, {"categorical": True}),
                                   ("CATEGORY_L3", _OPTIONAL_STRING, {"categorical": True}),
                                   (C.CREATION_TIMESTAMP, ["null", "long"], {}),
                                   ("PRODUCT_DESCRIPTION", _OPTIONAL_STRING, {"textual": True})]),
        C.USERS: _schema("Users", [(C.USER_ID, "string", {}), ("MEMBERSHIP_STATUS", _OPTIONAL_STRING,
                                                                {"categorical": True})]),
    },
    "VIDEO_ON_DEMAND": {
        C.INTERACTIONS: _schema("Interactions", [(C.USER_ID, "string", {}), (C.ITEM_ID, "string", {}),
                                                 (C.TIMESTAMP, "long", {}), (C.EVENT_TYPE, "string", {})]),
        C.ITEMS: _schema("Items", [(C.ITEM_ID, "string", {}), ("GENRES", "string", {"categorical": True}),
                                   (C.CREATION_TIMESTAMP, ["null", "long"], {}),
                                   ("DESCRIPTION", _OPTIONAL_STRING, {"textual": True})]),
        C.USERS: _schema("Users", [(C.USER_ID, "string", {}), ("SUBSCRIPTION_MODEL", _OPTIONAL_STRING,
                                                                {"categorical": True})]),
    },
}


def check_use_case(group: DatasetGroup, use_case: dict) -> str | None:
    """Validate `group` for the use case; return the event type to train on, as the data spells it
    (None: every event type)."""
    domain = use_case.get("domain")
    if domain not in DOMAIN_SCHEMAS:
        raise InputError(f"unknown domain {domain!r}; domains: {', '.join(DOMAIN_SCHEMAS)}", column="use_case.domain")
    name = use_case.get("name", "?")
    inter = group.interactions
    if C.EVENT_TYPE not in inter.columns:
        raise InputError(f"the {domain} use case {name} needs an EVENT_TYPE column in the interactions",
                         file=group.source, column=C.EVENT_TYPE)
    for dataset in use_case.get("required_datasets") or []:  # e.g. More like X trains on the Items too
        if {C.ITEMS: group.items, C.USERS: group.users}.get(dataset, inter) is None:
            raise InputError(f"the {domain} use case {name} needs the {dataset} dataset "
                             f"(data.{dataset.lower()}=<csv>)", file=group.source, column=f"data.{dataset.lower()}")
    present = {str(t).lower(): str(t) for t in inter[C.EVENT_TYPE].dropna().unique()}
    missing = [t for t in use_case.get("required_event_types") or [] if str(t).lower() not in present]
    if missing:
        raise InputError(f"the {domain} use case {name} needs events of type {', '.join(missing)}; the data has "
                         f"{', '.join(sorted(present.values())) or 'none'}", file=group.source, column=C.EVENT_TYPE)
    wanted = use_case.get("event_type")
    return present[str(wanted).lower()] if wanted is not None else None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m personalize_torch.data.domains",
                                description="Write a domain's preset schemas (Avro JSON).")
    p.add_argument("--domain", required=True, choices=sorted(DOMAIN_SCHEMAS))
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for dataset, schema in DOMAIN_SCHEMAS[args.domain].items():
        path = out / f"{dataset.lower()}.schema.json"
        path.write_text(json.dumps(schema, indent=2) + "\n")
        print(path)


if __name__ == "__main__":
    main()
