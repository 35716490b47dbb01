"""Event selection (eventType / eventValueThreshold) and Personalize's minimum data for training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalize_torch.data import constants as C
from personalize_torch.data.event_selection import select_events
from personalize_torch.data.minimum_data import check_minimum_data
from personalize_torch.errors import InputError


def _events() -> pd.DataFrame:
    return pd.DataFrame({
        C.USER_ID: pd.Series(["u1", "u1", "u2", "u2", "u3", "u3", "u4"], dtype="string"),
        C.ITEM_ID: pd.Series(["a", "b", "c", "d", "e", "f", "g"], dtype="string"),
        C.TIMESTAMP: np.arange(100, 107, dtype=np.int64),
        C.EVENT_TYPE: pd.Series(["click", "watch", "click", "purchase", None, "watch", "click"], dtype="string"),
        C.EVENT_VALUE: np.array([1.0, 3.0, 2.999, 4.5, 5.0, np.nan, 3.0]),
    })


# --------------------------------------------------------------------------- select_events


def test_no_selection_keeps_everything():
    events = _events()
    out = select_events(events)
    pd.testing.assert_frame_equal(out, events)


def test_by_event_type():
    out = select_events(_events(), event_type="click")
    assert out[C.ITEM_ID].tolist() == ["a", "c", "g"]
    assert out[C.EVENT_TYPE].tolist() == ["click", "click", "click"]
    assert out.index.tolist() == [0, 1, 2]
    assert list(out.columns) == list(_events().columns)


def test_by_event_type_skips_missing_types():
    assert select_events(_events(), event_type="watch")[C.ITEM_ID].tolist() == ["b", "f"]


def test_by_event_value_threshold_is_inclusive():
    out = select_events(_events(), event_value_threshold=3.0)
    # 3.0 kept (>=), 2.999 dropped, NaN dropped
    assert out[C.ITEM_ID].tolist() == ["b", "d", "e", "g"]
    assert out[C.EVENT_VALUE].tolist() == [3.0, 4.5, 5.0, 3.0]


def test_threshold_given_as_int_or_string_number():
    assert select_events(_events(), event_value_threshold=4)[C.ITEM_ID].tolist() == ["d", "e"]
    assert select_events(_events(), event_value_threshold="4.5")[C.ITEM_ID].tolist() == ["d", "e"]


def test_by_type_and_threshold():
    out = select_events(_events(), event_type="click", event_value_threshold=2.0)
    assert out[C.ITEM_ID].tolist() == ["c", "g"]


def test_threshold_that_keeps_nothing_returns_empty_frame():
    out = select_events(_events(), event_value_threshold=100)
    assert len(out) == 0
    assert list(out.columns) == list(_events().columns)


def test_event_type_without_column():
    events = _events().drop(columns=[C.EVENT_TYPE])
    with pytest.raises(InputError) as info:
        select_events(events, event_type="click", source="inter.csv")
    err = info.value
    assert (err.file, err.column) == ("inter.csv", C.EVENT_TYPE)
    assert "eventType='click'" in err.message and "no EVENT_TYPE column" in err.message


def test_threshold_without_column():
    events = _events().drop(columns=[C.EVENT_VALUE])
    with pytest.raises(InputError) as info:
        select_events(events, event_value_threshold=1.0, source="inter.csv")
    err = info.value
    assert (err.file, err.column) == ("inter.csv", C.EVENT_VALUE)
    assert "no EVENT_VALUE column" in err.message


def test_no_events_of_that_type_lists_the_types_present():
    with pytest.raises(InputError) as info:
        select_events(_events(), event_type="Click", source="inter.csv")
    err = info.value
    assert (err.file, err.column) == ("inter.csv", C.EVENT_TYPE)
    assert err.message == "no events of type 'Click'; the types present are ['click', 'purchase', 'watch']"


def test_input_frame_is_not_modified():
    events = _events()
    select_events(events, event_type="click", event_value_threshold=2.0)
    pd.testing.assert_frame_equal(events, _events())


# --------------------------------------------------------------------------- check_minimum_data


def _interactions(n_interactions: int, users_with_two: int) -> pd.DataFrame:
    """`users_with_two` users with exactly 2 events, every other event by a distinct one-event user."""
    users = [f"r{u}" for u in range(users_with_two) for _ in range(2)]
    users += [f"s{k}" for k in range(n_interactions - len(users))]
    assert len(users) == n_interactions
    return pd.DataFrame({C.USER_ID: pd.Series(users, dtype="string"),
                         C.ITEM_ID: pd.Series([f"i{k % 50}" for k in range(n_interactions)], dtype="string"),
                         C.TIMESTAMP: np.arange(n_interactions, dtype=np.int64)})


def test_minimum_constants():
    assert C.MIN_INTERACTIONS == 1000
    assert C.MIN_USERS_WITH_TWO_INTERACTIONS == 25


def test_exactly_the_minimum_passes():
    df = _interactions(1000, 25)
    assert int((df[C.USER_ID].value_counts() >= 2).sum()) == 25
    check_minimum_data(df)  # no error


def test_one_interaction_short_fails():
    with pytest.raises(InputError) as info:
        check_minimum_data(_interactions(999, 25), source="inter.csv")
    err = info.value
    assert err.file == "inter.csv"
    assert err.message.startswith("999 interactions after event selection; at least 1000 are needed")


def test_one_user_with_two_short_fails():
    with pytest.raises(InputError) as info:
        check_minimum_data(_interactions(1000, 24), source="inter.csv")
    err = info.value
    assert err.file == "inter.csv"
    assert err.message.startswith("only 24 users have 2 or more interactions; at least 25 are needed")


def test_users_with_more_than_two_count():
    # 5 users with 200 events each: 1000 interactions but only 5 users with 2+
    df = pd.DataFrame({C.USER_ID: np.repeat([f"u{k}" for k in range(5)], 200),
                       C.ITEM_ID: ["i"] * 1000, C.TIMESTAMP: np.arange(1000)})
    with pytest.raises(InputError, match="only 5 users have 2 or more"):
        check_minimum_data(df)
    # 25 users with 40 events each: passes
    df = pd.DataFrame({C.USER_ID: np.repeat([f"u{k}" for k in range(25)], 40),
                       C.ITEM_ID: ["i"] * 1000, C.TIMESTAMP: np.arange(1000)})
    check_minimum_data(df)


def test_custom_minimums():
    df = _interactions(10, 3)
    check_minimum_data(df, min_interactions=10, min_users_with_two=3)
    with pytest.raises(InputError, match="10 interactions after event selection; at least 11 are needed"):
        check_minimum_data(df, min_interactions=11, min_users_with_two=3)
    with pytest.raises(InputError, match="only 3 users have 2 or more interactions; at least 4 are needed"):
        check_minimum_data(df, min_interactions=10, min_users_with_two=4)


def test_minimum_applies_after_event_selection():
    # 1000 click events by 25 two-event users + singles, plus 500 purchases: selecting purchases fails
    clicks = _interactions(1000, 25).assign(**{C.EVENT_TYPE: "click"})
    purchases = _interactions(500, 30).assign(**{C.EVENT_TYPE: "purchase"})
    events = pd.concat([clicks, purchases], ignore_index=True)
    check_minimum_data(select_events(events, event_type="click"))
    with pytest.raises(InputError, match=": 500 interactions after event selection"):
        check_minimum_data(select_events(events, event_type="purchase"))


def test_minimum_data_error_from_a_csv_names_the_file(tmp_path):
    from personalize_torch.data.dataset_group import DatasetGroup
    from personalize_torch.data.prepared import PreparedData

    path = tmp_path / "few.csv"
    path.write_text("USER_ID,ITEM_ID,TIMESTAMP\nu1,a,1\nu1,b,2\nu2,a,3\n")
    group = DatasetGroup.from_csv(path)
    with pytest.raises(InputError) as info:
        PreparedData(group)     # events are selected and checked when the data is prepared
    assert info.value.message.startswith("3 interactions after event selection")
    assert info.value.file == str(path)
