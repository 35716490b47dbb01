"""Readers for the public benchmark data sets, into Personalize-format dataset groups.

* MovieLens: ml-100k (`u.data`, `u.item`, `u.user`), ml-1m style `::` files (`ratings.dat`, or the
  partial `ratings.PARTIAL-*.dat.gz`; `movies.dat`, `users.dat`) and ml-latest-small (`ratings.csv`,
  `movies.csv`). Ratings become EVENT_TYPE "rating" with the rating as EVENT_VALUE.
* MIND behaviors (`behaviors.tsv`: impression id, user, time, clicked-before history, `N1-0 N2-1`
  impressions): every click (`-1`) is an event whose IMPRESSION is the whole slate shown; the history
  clicks come first, one second apart, before the user's first impression (their real times are unknown).
* Amazon/Yelp sequences (`USER ITEM ITEM ...` a line, chronological, no timestamps): TIMESTAMP is the
  position in the user's sequence, which keeps the order and nothing more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.schema import Field, Schema
from personalize_torch.errors import InputError

ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western"]


def _interactions(user, item, rating, ts) -> pd.DataFrame:
    return pd.DataFrame({
        C.USER_ID: pd.Series(user).astype(str).astype("string"),
        C.ITEM_ID: pd.Series(item).astype(str).astype("string"),
        C.TIMESTAMP: pd.Series(ts).astype("int64"),
        C.EVENT_TYPE: pd.Series(["rating"] * len(user), dtype="string"),
        C.EVENT_VALUE: pd.Series(rating).astype("float64"),
    })


def _schemas(items: pd.DataFrame | None, users: pd.DataFrame | None, source: str) -> dict[str, Schema]:
    schemas = {C.INTERACTIONS: Schema(C.INTERACTIONS, [
        Field(C.USER_ID, "string"), Field(C.ITEM_ID, "string"), Field(C.TIMESTAMP, "long"),
        Field(C.EVENT_TYPE, "string"), Field(C.EVENT_VALUE, "float")], source)}
    for dataset_type, df, id_name in ((C.ITEMS, items, C.ITEM_ID), (C.USERS, users, C.USER_ID)):
        if df is None:
            continue
        fields = [Field(id_name, "string")]
        for col in df.columns.drop(id_name):
            if pd.api.types.is_numeric_dtype(df[col]):
                fields.append(Field(col, "float", nullable=True))
            else:
                fields.append(Field(col, "string", nullable=True, categorical=col != "TITLE", textual=col == "TITLE"))
        schemas[dataset_type] = Schema(dataset_type, fields, source)
    return schemas


def load_movielens(path: str | Path) -> DatasetGroup:
    path = Path(path)
    if (path / "u.data").exists():
        raw = pd.read_csv(path / "u.data", sep="\t", names=["u", "i", "r", "t"])
        items_raw = pd.read_csv(path / "u.item", sep="|", names=["i", "title", "date", "video", "url"] + ML100K_GENRES,
                                encoding="latin-1")
        flags = items_raw[ML100K_GENRES].to_numpy().astype(bool)
        genres = ["|".join(g for g, f in zip(ML100K_GENRES, row) if f) for row in flags]
        items = pd.DataFrame({C.ITEM_ID: items_raw["i"].astype(str), "GENRES": genres, "TITLE": items_raw["title"]})
        users_raw = pd.read_csv(path / "u.user", sep="|", names=["u", "age", "gender", "occupation", "zip"])
        users = pd.DataFrame({C.USER_ID: users_raw["u"].astype(str), "AGE": users_raw["age"].astype(float),
                              "GENDER": users_raw["gender"], "OCCUPATION": users_raw["occupation"]})
    elif (path / "ratings.csv").exists():
        raw = pd.read_csv(path / "ratings.csv").set_axis(["u", "i", "r", "t"], axis=1)
        movies = pd.read_csv(path / "movies.csv")
        items = pd.DataFrame({C.ITEM_ID: movies["movieId"].astype(str), "GENRES": movies["genres"],
                              "TITLE": movies["title"]})
        users = None
    else:
        ratings = sorted(path.glob("ratings*.dat*"))
        if not ratings:
            raise InputError("no MovieLens ratings file (u.data, ratings.dat or ratings.csv)", file=str(path))
        raw = pd.read_csv(ratings[0], sep="::", names=["u", "i", "r", "t"], engine="python")
        movies = pd.read_csv(path / "movies.dat", sep="::", names=["i", "title", "genres"], engine="python",
                             encoding="latin-1")
        items = pd.DataFrame({C.ITEM_ID: movies["i"].astype(str), "GENRES": movies["genres"], "TITLE": movies["title"]})
        users_raw = pd.read_csv(path / "users.dat", sep="::", names=["u", "gender", "age", "occupation", "zip"],
                                engine="python")
        users = pd.DataFrame({C.USER_ID: users_raw["u"].astype(str), "AGE": users_raw["age"].astype(float),
                              "GENDER": users_raw["gender"], "OCCUPATION": users_raw["occupation"].astype(str)})
        users = users[users[C.USER_ID].isin(raw["u"].astype(str).unique())]
    interactions = _interactions(raw["u"], raw["i"], raw["r"], raw["t"])
    items = items.astype({c: "string" for c in items.columns if not pd.api.types.is_numeric_dtype(items[c])})
    if users is not None:
        users = users.astype({c: "string" for c in users.columns if not pd.api.types.is_numeric_dtype(users[c])})
    return DatasetGroup(interactions, items, users.reset_index(drop=True) if users is not None else None,
                        _schemas(items, users, str(path)), name=path.name, source=str(path))


def load_amazon_seq(path: str | Path) -> DatasetGroup:
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=str(path))
    numbered = [(n, line.split()) for n, line in enumerate(path.read_text().split("\n"), start=1) if line.strip()]
    for n, t in numbered:
        if len(t) < 2:
            raise InputError("expected `USER ITEM ITEM ...`", file=str(path), line=n)
    tokens = [t for _, t in numbered]
    lengths = np.array([len(t) - 1 for t in tokens])
    users = np.repeat([t[0] for t in tokens], lengths)
    items = np.concatenate([t[1:] for t in tokens])
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(len(items)) - starts
    interactions = pd.DataFrame({
        C.USER_ID: pd.Series(users, dtype="string"), C.ITEM_ID: pd.Series(items, dtype="string"),
        C.TIMESTAMP: position.astype(np.int64)})
    schema = Schema(C.INTERACTIONS, [Field(C.USER_ID, "string"), Field(C.ITEM_ID, "string"),
                                     Field(C.TIMESTAMP, "long")], str(path))
    return DatasetGroup(interactions, schemas={C.INTERACTIONS: schema}, name=path.stem, source=str(path))


def load_mind(path: str | Path) -> DatasetGroup:
    path = Path(path)
    behaviors = path / "behaviors.tsv" if path.is_dir() else path
    if not behaviors.exists():
        raise InputError("no MIND behaviors.tsv", file=str(path))
    raw = pd.read_csv(behaviors, sep="\t", names=["impression_id", "user", "time", "history", "impressions"],
                      dtype=str, keep_default_na=False)
    raw["ts"] = (pd.to_datetime(raw["time"], format="%m/%d/%Y %I:%M:%S %p").astype("int64") // 10**9)
    # Clicks inside impressions, each with its slate.
    shown = raw["impressions"].str.split(" ")
    slates = shown.map(lambda tokens: "|".join(t.rsplit("-", 1)[0] for t in tokens))
    exploded = raw.assign(token=shown, IMPRESSION=slates).explode("token")
    clicks = exploded[exploded["token"].str.endswith("-1")]
    clicks = pd.DataFrame({C.USER_ID: clicks["user"], C.ITEM_ID: clicks["token"].str[:-2],
                           C.TIMESTAMP: clicks["ts"], C.IMPRESSION: clicks["IMPRESSION"]})
    # Clicked-before histories: from each user's earliest row, one second apart, ending before it.
    first = raw.sort_values("ts", kind="stable").drop_duplicates("user")
    history = first.assign(item=first["history"].str.split(" ")).explode("item")
    history = history[history["item"].fillna("").str.len() > 0]
    position_from_end = history.groupby(level=0).cumcount(ascending=False)
    past = pd.DataFrame({C.USER_ID: history["user"], C.ITEM_ID: history["item"],
                         C.TIMESTAMP: history["ts"] - 3600 - position_from_end, C.IMPRESSION: ""})
    interactions = pd.concat([past, clicks], ignore_index=True)
    interactions = interactions.astype({C.USER_ID: "string", C.ITEM_ID: "string", C.IMPRESSION: "string",
                                        C.TIMESTAMP: "int64"})
    schema = Schema(C.INTERACTIONS, [Field(C.USER_ID, "string"), Field(C.ITEM_ID, "string"),
                                     Field(C.TIMESTAMP, "long"), Field(C.IMPRESSION, "string", nullable=True)],
                    str(behaviors))
    return DatasetGroup(interactions, schemas={C.INTERACTIONS: schema}, name="mind", source=str(behaviors))
