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
