"""Where a training run's data comes from: Personalize CSVs, a benchmark data set, or the demo data."""

from __future__ import annotations

from personalize_torch.data import constants as C
from personalize_torch.data.benchmarks import load_amazon_seq, load_mind, load_movielens
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.schema import parse_schema
from personalize_torch.errors import InputError

FORMATS = ("personalize", "movielens", "amazon_seq", "mind")


def demo_dataset_group(n_users: int = 1000, n_items: int = 400, seed: int = 0,
                       slate_choice: bool = False, events_per_user: tuple[int, int] = (15, 60)) -> DatasetGroup:
    """The built-in demo data (see `personalize_torch.data.synthetic`) as a dataset group; `events_per_user`
    (lo, hi) bounds each user's clicks (`+data.demo.events_per_user=[3,8]` for sparse users)."""
    from personalize_torch.data.synthetic import generate_demo_data

    demo = generate_demo_data(n_users=n_users, n_items=n_items, seed=seed, slate_choice=slate_choice,
                              events_per_user=tuple(events_per_user))
    schemas = {
        C.INTERACTIONS: parse_schema(demo.interactions_schema, C.INTERACTIONS, "demo interactions schema"),
        C.ITEMS: parse_schema(demo.items_schema, C.ITEMS, "demo items schema"),
        C.USERS: parse_schema(demo.users_schema, C.USERS, "demo users schema"),
    }
    return DatasetGroup(demo.interactions, demo.items, demo.users, schemas, name="demo")


def load_dataset_group(format: str = "personalize", interactions: str | None = None, items: str | None = None,
                       users: str | None = None, interactions_schema: str | None = None,
                       items_schema: str | None = None, users_schema: str | None = None, path: str | None = None,
                       demo: dict | None = None, group: str | None = None,
                       share: tuple[int, int] | None = None) -> DatasetGroup:
    """Load data as a training config names it: a dataset group directory (`group`, filled by
    `python -m personalize_torch.data.import_jobs`), CSVs, a benchmark, or (nothing given) the demo data.
    `share=(rank, world size)`: of a group directory, only that share of its users (group_store)."""
    if group is not None:
        from personalize_torch.data.import_jobs import load_group_directory

        return load_group_directory(group, share=share)
    if format == "personalize":
        if interactions is None:
            return demo_dataset_group(**(demo or {}))
        return DatasetGroup.from_csv(interactions, items, users, interactions_schema, items_schema, users_schema)
    if path is None:
        raise InputError(f"data.format={format} needs data.path", column="data.path")
    if format == "movielens":
        return load_movielens(path)
    if format == "amazon_seq":
        return load_amazon_seq(path)
    if format == "mind":
        return load_mind(path)
    raise InputError(f"unknown data.format {format!r}; expected one of {', '.join(FORMATS)}", column="data.format")

