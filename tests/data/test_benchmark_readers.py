"""Benchmark readers: MovieLens (100k, the partial 1m, latest-small) and the Amazon sequence files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personalize_torch.data import constants as C
from personalize_torch.data.benchmarks import load_amazon_seq, load_movielens
from personalize_torch.errors import InputError

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
MOVIELENS = DATA / "movielens"
AMAZON_SEQ = DATA / "amazon_seq"
needs_data = pytest.mark.skipif(not (MOVIELENS.is_dir() and AMAZON_SEQ.is_dir()), reason=f"{DATA} is absent")


def _check_interactions_frame(df: pd.DataFrame) -> None:
    assert list(df.columns) == [C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT_TYPE, C.EVENT_VALUE]
    assert isinstance(df[C.USER_ID].dtype, pd.StringDtype)
    assert isinstance(df[C.ITEM_ID].dtype, pd.StringDtype)
    assert df[C.TIMESTAMP].dtype == np.int64
    assert df[C.EVENT_VALUE].dtype == np.float64
    assert df[C.EVENT_TYPE].unique().tolist() == ["rating"]


@needs_data
@pytest.mark.real_data
def test_movielens_100k():
    group = load_movielens(MOVIELENS / "ml-100k")
    df = group.interactions
    _check_interactions_frame(df)
    assert group.name == "ml-100k"
    assert len(df) == 100000
    assert df[C.USER_ID].nunique() == 943
    assert df[C.ITEM_ID].nunique() == 1682
    assert df.iloc[0][[C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT_VALUE]].tolist() == ["196", "242", 881250949, 3.0]
    assert (df[C.TIMESTAMP].min(), df[C.TIMESTAMP].max()) == (874724710, 893286638)
    assert df[C.EVENT_VALUE].value_counts().sort_index().to_dict() == {
        1.0: 6110, 2.0: 11370, 3.0: 27145, 4.0: 34174, 5.0: 21201}
    items = group.items
    assert len(items) == 1682 and items[C.ITEM_ID].is_unique
    assert items.iloc[0][[C.ITEM_ID, "GENRES", "TITLE"]].tolist() == ["1", "Animation|Children's|Comedy",
                                                                      "Toy Story (1995)"]
    multi = items["GENRES"].str.contains("|", regex=False)
    assert int(multi.sum()) > 500  # multi-valued genres are common
    assert group.schemas[C.ITEMS].get("GENRES").categorical
    assert group.schemas[C.ITEMS].get("TITLE").textual
    users = group.users
    assert len(users) == 943
    assert users.iloc[0].tolist() == ["1", 24.0, "M", "technician"]
    assert set(group.schemas) == {C.INTERACTIONS, C.ITEMS, C.USERS}
    # every rated item is in the catalogue
    assert set(df[C.ITEM_ID].unique()) <= set(items[C.ITEM_ID])
    assert len(group.catalogue_item_ids()) == 1682


@needs_data
@pytest.mark.real_data
def test_movielens_1m_partial():
    group = load_movielens(MOVIELENS / "ml-1m")
    df = group.interactions
    _check_interactions_frame(df)
    assert len(df) == 487650
    assert df[C.USER_ID].nunique() == 2999
    assert df[C.ITEM_ID].nunique() == 3615
    assert df.iloc[0][[C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT_VALUE]].tolist() == ["1", "1193", 978300760, 5.0]
    assert (df[C.TIMESTAMP].min(), df[C.TIMESTAMP].max()) == (970620734, 1046388675)
    assert len(group.items) == 3883
    assert group.items.iloc[0]["GENRES"] == "Animation|Children's|Comedy"
    # users.dat has 6040 users; only those with ratings in the partial file are kept
    assert len(group.users) == 2999
    assert set(group.users[C.USER_ID]) == set(df[C.USER_ID].unique())


@needs_data
@pytest.mark.real_data
def test_movielens_latest_small():
    group = load_movielens(MOVIELENS / "ml-latest-small")
    df = group.interactions
    _check_interactions_frame(df)
    assert len(df) == 100836
    assert df[C.USER_ID].nunique() == 610
    assert df[C.ITEM_ID].nunique() == 9724
    assert sorted(df[C.EVENT_VALUE].unique().tolist()) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    assert len(group.items) == 9742
    assert group.items.iloc[0]["GENRES"] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert group.users is None
    assert set(group.schemas) == {C.INTERACTIONS, C.ITEMS}


@needs_data
@pytest.mark.real_data
def test_amazon_seq_beauty():
    group = load_amazon_seq(AMAZON_SEQ / "Beauty.txt")
    df = group.interactions
    assert group.name == "Beauty"
    assert list(df.columns) == [C.USER_ID, C.ITEM_ID, C.TIMESTAMP]
    assert df[C.TIMESTAMP].dtype == np.int64
    assert len(df) == 198502
    assert df[C.USER_ID].nunique() == 22363
    assert df[C.ITEM_ID].nunique() == 12101
    # first line: `1 1 2 3 4 5`; second: `2 6 7 8 9 10 4 11`
    first = df[df[C.USER_ID] == "1"]
    assert first[C.ITEM_ID].tolist() == ["1", "2", "3", "4", "5"]
    assert first[C.TIMESTAMP].tolist() == [0, 1, 2, 3, 4]
    assert df[df[C.USER_ID] == "2"][C.ITEM_ID].tolist() == ["6", "7", "8", "9", "10", "4", "11"]
    # TIMESTAMP strictly increases along each user's line, from 0
    diffs = df.groupby(C.USER_ID, sort=False)[C.TIMESTAMP].diff().dropna()
    assert (diffs == 1).all()
    assert (df.groupby(C.USER_ID, sort=False)[C.TIMESTAMP].min() == 0).all()
    # 5-core: every user has at least 5 events (S3Rec preprocessing)
    assert df[C.USER_ID].value_counts().min() >= 5


# --------------------------------------------------------------------------- small hand-written files


def test_amazon_seq_small_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("7 3 1 2\n9 5\n")
    group = load_amazon_seq(path)
    df = group.interactions
    assert df[C.USER_ID].tolist() == ["7", "7", "7", "9"]
    assert df[C.ITEM_ID].tolist() == ["3", "1", "2", "5"]
    assert df[C.TIMESTAMP].tolist() == [0, 1, 2, 0]
    assert group.name == "tiny"


def test_amazon_seq_line_with_a_user_only(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 2 3\n4\n5 6\n")
    with pytest.raises(InputError) as info:
        load_amazon_seq(path)
    assert (info.value.file, info.value.line) == (str(path), 2)


def test_amazon_seq_bad_line_number_after_blank_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 2 3\n\n4\n")
    with pytest.raises(InputError) as info:
        load_amazon_seq(path)
    assert info.value.line == 3


def test_amazon_seq_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_amazon_seq(tmp_path / "nope.txt")


def test_movielens_directory_without_ratings(tmp_path):
    with pytest.raises(InputError) as info:
        load_movielens(tmp_path)
    assert info.value.file == str(tmp_path)
    assert "no MovieLens ratings file" in info.value.message
