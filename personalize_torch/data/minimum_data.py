"""Personalize's minimum data for training: 1000 interactions and 25 users with 2 or more."""

from __future__ import annotations

import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.errors import InputError


def check_minimum_data(interactions: pd.DataFrame, source: str = "interactions",
                       min_interactions: int = C.MIN_INTERACTIONS,
                       min_users_with_two: int = C.MIN_USERS_WITH_TWO_INTERACTIONS) -> None:
    n = len(interactions)
    if n < min_interactions:
        raise InputError(f"{n} interactions after event selection; at least {min_interactions} are needed "
                         "(Amazon Personalize's minimum)", file=source)
    per_user = interactions[C.USER_ID].value_counts()
    users_with_two = int((per_user >= 2).sum())
    if users_with_two < min_users_with_two:
        raise InputError(f"only {users_with_two} users have 2 or more interactions; at least "
                         f"{min_users_with_two} are needed (Amazon Personalize's minimum)", file=source)
