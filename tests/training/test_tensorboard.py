"""TensorBoard (issue #8): every training run is a row of the HParams tab with its settings and final metrics,
the curves are logged per epoch, and the learned item vectors go to the Embedding Projector with labels.

The HParams checks read the logs through TensorBoard's own HParams plugin (the data its tab shows)."""

import csv

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.recipes import RECIPES
from personalize_torch.training import train
from tests.conftest import compose_train_config

TINY = ["data.demo.n_users=150", "data.demo.n_items=60", "data.split=leave_one_out"]


def hparams_tab(logdir) -> list[dict]:
    """The HParams tab's session groups for `logdir`: [{"name", "hparams": {...}, "metrics": {tag: value}}]."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import hparams_plugin
    from werkzeug.test import Client

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    context = base_plugin.TBContext(logdir=str(logdir), multiplexer=mux,
                                    data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir)))
    app = hparams_plugin.HParamsPlugin(context).get_plugin_apps()["/session_groups"]
    response = Client(app).post("/", json={"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS"],
                                           "startIndex": 0, "sliceSize": 1000, "colParams": []})
    assert response.status_code == 200, response.get_data(as_text=True)
    return [{"name": g["name"], "hparams": g["hparams"],
             "metrics": {m["name"]["tag"]: m["value"] for m in g.get("metricValues", [])}}
            for g in response.get_json().get("sessionGroups", [])]


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_hparams_tab_curves_and_projector(tmp_path):
    cfg = compose_train_config(["recipe=hrnn_meta", *TINY, "trainer.max_epochs=2",
                                "callbacks.embedding_projector.max_items=40"], tmp_path)
    result = train(cfg)
    run_dir = tmp_path / "logs" / "tensorboard"

    # HParams tab: one session, the recipe's hyperparameters, the final val and test metrics (not hp_metric)
    (session,) = hparams_tab(tmp_path / "logs")
    assert session["hparams"]["recipe"] == "hrnn_meta"
    assert session["hparams"]["hidden_dimension"] == 43 and session["hparams"]["data.split"] == "leave_one_out"
    assert "n_items" not in session["hparams"]                  # sizes from the data are not settings
    expected = {f"{stage}/{name}": value for stage in ("val", "test")
                for name, value in result["metrics"][stage].items()}
    assert set(session["metrics"]) == set(expected)
    for tag, value in expected.items():
        assert session["metrics"][tag] == pytest.approx(value), tag

    # Curves per epoch: loss, learning rate (cosine schedule: it falls), validation metrics
    curves = scalars(run_dir)
    assert len(curves["train/loss"]) == 2 and len(curves["train/lr"]) == 2
    assert curves["train/lr"][0][1] > curves["train/lr"][1][1]
    assert len(curves["val/ndcg_at_10"]) >= 2

    # Projector: the 40 most popular items' vectors, labelled with ITEM_ID, GENRES and their interactions
    config = (run_dir / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "item_embeddings:' in config
    metadata_path = run_dir / config.split('metadata_path: "')[1].split('"')[0]
    tensors_path = run_dir / config.split('tensor_path: "')[1].split('"')[0]
    with open(metadata_path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    header, rows = rows[0], rows[1:]
    assert header[:2] == ["ITEM_ID", "GENRES"] and header[-1] == "interactions" and len(rows) == 40
    counts = [int(r[-1]) for r in rows]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    genres = dict(zip(*demo_dataset_group(n_users=150, n_items=60).items[["ITEM_ID", "GENRES"]].T.values))
    assert all(r[1] == genres[r[0]] for r in rows)
    vectors = [line.split("\t") for line in tensors_path.read_text().splitlines()]
    assert len(vectors) == 40 and {len(v) for v in vectors} == {43}


def test_count_based_runs_get_a_row_and_no_projector(tmp_path):
    result = train(compose_train_config(["recipe=popularity_count", *TINY], tmp_path))
    (session,) = hparams_tab(tmp_path / "logs")
    assert session["hparams"]["recipe"] == "popularity_count"
    assert session["metrics"]["val/ndcg_at_10"] == pytest.approx(result["metrics"]["val"]["ndcg_at_10"])
    assert not (tmp_path / "logs" / "tensorboard" / "projector_config.pbtxt").exists()


@pytest.mark.parametrize("name", sorted(n for n in RECIPES if not RECIPES[n].combines_solution_versions))
def test_every_trained_recipe_exposes_its_item_table(name):
    """A recipe with gradients has (n_items, D) item vectors for the projector; count-based ones have none."""
    data = PreparedData(demo_dataset_group(n_users=60, n_items=30), split="leave_one_out", check_minimum=False)
    recipe = RECIPES[name].from_data(data.describe())
    table = recipe.item_embeddings()
    if recipe.count_based:
        assert table is None
    else:
        assert table is not None and table.ndim == 2 and table.shape[0] == data.n_items
