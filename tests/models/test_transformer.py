"""The sequence transformer's scoring shortcut gives the numbers the full pass gives."""

import torch

from personalize_torch.models.transformer import SequenceTransformer


def test_last_only_equals_the_last_position_of_the_full_pass():
    torch.manual_seed(0)
    model = SequenceTransformer(n_items=100, dim=32, max_len=20, n_layers=3, n_heads=2, dropout=0.1).eval()
    items = torch.randint(1, 100, (6, 12))
    items[0, :7] = 0          # left padding of different lengths, one row with a single event
    items[3, :11] = 0
    with torch.no_grad():
        full = model(items)[:, -1]
        last = model(items, last_only=True)
    assert last.shape == (6, 1, 32)
    torch.testing.assert_close(last[:, -1], full, atol=1e-5, rtol=1e-5)
    # and a history longer than max_len is cut the same way in both
    long = torch.randint(1, 100, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(model(long, last_only=True)[:, -1], model(long)[:, -1], atol=1e-5, rtol=1e-5)


def test_item_inputs_are_scaled_by_sqrt_dim_and_older_checkpoints_load_unscaled():
    """New models read item embeddings times sqrt(dim) (SASRec's scale); a state dict saved before the scale
    existed loads with scale 1, so an older model keeps giving the hidden states it was trained to give."""
    torch.manual_seed(0)
    model = SequenceTransformer(n_items=50, dim=16, max_len=10, n_layers=1, n_heads=2, dropout=0.0).eval()
    assert float(model.item_input_scale) == 4.0 and "item_input_scale" in model.state_dict()
    items = torch.randint(1, 50, (3, 6))
    old_state = {k: v for k, v in model.state_dict().items() if k != "item_input_scale"}
    old = SequenceTransformer(n_items=50, dim=16, max_len=10, n_layers=1, n_heads=2, dropout=0.0).eval()
    old.load_state_dict(old_state)
    assert float(old.item_input_scale) == 1.0
    with torch.no_grad():
        scaled, unscaled = model(items), old(items)
        # the old model is the new one whose embedding table is handed in already divided by the scale
        torch.testing.assert_close(unscaled, model(items, item_table=model.item_embedding.weight / 4.0))
    assert not torch.allclose(scaled, unscaled)


def test_each_position_reads_only_its_own_and_earlier_events():
    """Causal: changing later events leaves every earlier position's output as it was; changing an earlier
    event changes the positions after it."""
    torch.manual_seed(0)
    model = SequenceTransformer(n_items=50, dim=16, max_len=10, n_layers=2, n_heads=2, dropout=0.0).eval()
    items = torch.randint(1, 50, (4, 8))
    later = items.clone()
    later[:, 5:] = torch.randint(1, 50, (4, 3))
    earlier = items.clone()
    earlier[:, 2] = (items[:, 2] % 49) + 1
    with torch.no_grad():
        base, changed_late, changed_early = model(items), model(later), model(earlier)
    torch.testing.assert_close(changed_late[:, :5], base[:, :5])
    assert not torch.allclose(changed_late[:, 5:], base[:, 5:])
    torch.testing.assert_close(changed_early[:, :2], base[:, :2])
    assert (changed_early[:, 2:] - base[:, 2:]).abs().amax(-1).min() > 1e-4
