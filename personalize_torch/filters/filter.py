"""`Filter`: a parsed filter expression and the masks it gives over a catalogue."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from personalize_torch.filters import evaluate
from personalize_torch.filters.catalogue import Catalogue
from personalize_torch.filters.errors import FilterError
from personalize_torch.filters.nodes import CURRENT_ITEM, CURRENT_USER, ITEM_ID, USER_ID, CurrentItemField, Expression
from personalize_torch.filters.parser import parse
from personalize_torch.filters.values import parse_filter_values

FilterValues = Mapping[str, object] | None


@dataclass(frozen=True)
class Filter:
    """A filter expression, parsed once; evaluate it as often as needed.

    `expressions` are the `|`-separated parts; `text` is the expression as given.
    """

    expressions: tuple[Expression, ...]
    text: str = ""

    @classmethod
    def parse(cls, expression: str) -> Filter:
        """Parse `expression`; FilterError (an InputError) gives the character position and what was expected."""
        return cls(parse(expression), expression)

    # ---- what the filter needs
    @property
    def target(self) -> str:
        """ItemID (item recommendations) or UserID (user segments)."""
        return self.expressions[0].target

    @property
    def parameters(self) -> list[str]:
        """Parameter names (without `$`) in order of first use."""
        names: dict[str, None] = {}
        for expr in self.expressions:
            for name in expr.parameters():
                names.setdefault(name)
        return list(names)

    @property
    def datasets(self) -> set[str]:
        """Datasets the filter reads: Items, Interactions, Users, CurrentUser, CurrentItem."""
        out = set()
        for expr in self.expressions:
            for cond in expr.conditions():
                out.add(cond.field.dataset)
                if any(isinstance(v, CurrentItemField) for v in cond.values):
                    out.add(CURRENT_ITEM)
        return out

    @property
    def uses_current_item(self) -> bool:
        return CURRENT_ITEM in self.datasets

    @property
    def uses_current_user(self) -> bool:
        return CURRENT_USER in self.datasets

    def __str__(self) -> str:
        """Canonical form: keywords upper-case, single spaces; parses back to an equal filter."""
        return " | ".join(str(e) for e in self.expressions)

    def validate(self, catalogue: Catalogue) -> None:
        """FilterError for a field the catalogue lacks (naming the ones it has), a textual or boolean field,
        or a dataset it has no data for. `item_mask` / `user_mask` call this too."""
        evaluate.validate(self.expressions, catalogue)

    # ---- evaluation
    def item_mask(self, catalogue: Catalogue, user_rows, filter_values: FilterValues | Sequence[FilterValues] = None,
                  current_items=None, device: torch.device | str | None = None) -> torch.Tensor:
        """Items that may be recommended: bool (n_items,) for one user row, (B, n_items) for a sequence.

        - `user_rows`: row(s) in `catalogue.user_ids` (`catalogue.user_rows(ids)`), -1 = unknown user.
        - `filter_values`: Personalize's filterValues (`{"GENRE": "\\"comedy\\",\\"drama\\""}`), one map
          for all rows, or a sequence of B maps (e.g. per line of a batch job).
        - `current_items`: item index (or indices, (B,)) of the request's item, for CurrentItem filters.
        Column 0 (padding) is always False.
        """
        if self.target != ITEM_ID:
            raise FilterError("this filter selects users (UserID); use user_mask for user segments")
        self.validate(catalogue)
        single = np.ndim(user_rows) == 0
        rows = np.atleast_1d(np.asarray(user_rows, dtype=np.int64))
        cur = None
        if current_items is not None:
            cur = np.broadcast_to(np.atleast_1d(np.asarray(current_items, dtype=np.int64)), rows.shape)
        groups = _group_values(filter_values, len(rows))
        if len(groups) == 1:
            ((values, idx),) = groups
            mask = evaluate.item_mask(self.expressions, catalogue, rows, values, cur)
        else:
            mask = np.zeros((len(rows), catalogue.n_items), dtype=bool)
            for values, idx in groups:
                mask[idx] = evaluate.item_mask(self.expressions, catalogue, rows[idx], values,
                                               None if cur is None else cur[idx])
        out = torch.from_numpy(mask[0] if single else mask)
        return out.to(device) if device is not None else out

    def user_mask(self, catalogue: Catalogue, filter_values: FilterValues = None, user_rows=None,
                  device: torch.device | str | None = None) -> torch.Tensor:
        """Users a user-segment job may return: bool (n_users,) over `catalogue.user_ids`, or over `user_rows`."""
        if self.target != USER_ID:
            raise FilterError("this filter selects items (ItemID); use item_mask for recommendations")
        self.validate(catalogue)
        rows = (np.arange(catalogue.n_users, dtype=np.int64) if user_rows is None
                else np.atleast_1d(np.asarray(user_rows, dtype=np.int64)))
        mask = evaluate.user_mask(self.expressions, catalogue, rows, parse_filter_values(filter_values))
        out = torch.from_numpy(mask)
        return out.to(device) if device is not None else out


def _group_values(filter_values, n_rows: int) -> list[tuple[dict, np.ndarray]]:
    """[(parsed values, row positions)]: one group for a single map, else one per distinct map."""
    if filter_values is None or isinstance(filter_values, Mapping):
        return [(parse_filter_values(filter_values), np.arange(n_rows))]
    if isinstance(filter_values, (str, bytes)) or not isinstance(filter_values, Sequence):
        raise FilterError("filter_values must be a map, or a sequence of maps (one per user row)")
    if len(filter_values) != n_rows:
        raise FilterError(f"filter_values has {len(filter_values)} maps for {n_rows} user rows")
    groups: dict[str, tuple[dict, list[int]]] = {}
    for i, fv in enumerate(filter_values):
        key = json.dumps(fv, sort_keys=True, default=str)
        if key not in groups:
            groups[key] = (parse_filter_values(fv), [])
        groups[key][1].append(i)
    return [(values, np.asarray(idx, dtype=np.int64)) for values, idx in groups.values()]
