"""Reading a step's rows of an item table (models/item_rows.py): the rows, their local indices, and a gradient
on those rows only that equals the dense one."""

import torch

from personalize_torch.models.item_rows import BatchRows, gather_rows


def test_batch_rows_are_the_distinct_items_read_with_padding_first():
    items = torch.tensor([[0, 0, 7, 3], [9, 3, 3, 12]])
    rows = BatchRows.of(torch.tensor([5, 7, 5]), items)
    assert rows.ids.tolist() == [0, 3, 5, 7, 9, 12]
    assert rows.ids[rows.negatives].tolist() == [5, 7, 5]
    local = rows.local(items)
    assert torch.equal(rows.ids[local], items) and local[0, :2].tolist() == [0, 0]   # padding stays 0
    assert BatchRows.of(torch.tensor([4]), torch.tensor([[1, 2]])).ids.tolist() == [0, 1, 2, 4]   # 0 even unread


def test_gathered_rows_get_the_dense_gradient_as_a_sparse_one():
    torch.manual_seed(0)
    weight = torch.randn(10, 3, requires_grad=True)
    bias = torch.randn(10, requires_grad=True)
    ids = torch.tensor([0, 2, 5, 2])                        # repeated rows add up
    upstream, upstream_bias = torch.randn(4, 3), torch.randn(4)
    ((gather_rows(weight, ids, padding_idx=0) * upstream).sum() + (gather_rows(bias, ids) * upstream_bias).sum()
     ).backward()
    assert weight.grad.is_sparse and bias.grad.is_sparse
    sparse_weight, sparse_bias = weight.grad.to_dense(), bias.grad.to_dense()
    weight.grad = bias.grad = None
    ((weight[ids] * upstream).sum() + (bias[ids] * upstream_bias).sum()).backward()
    expected = weight.grad.clone()
    expected[0] = 0                                         # padding_idx: no gradient, as nn.Embedding
    torch.testing.assert_close(sparse_weight, expected)
    torch.testing.assert_close(sparse_bias, bias.grad)
    assert set(weight.grad.nonzero()[:, 0].tolist()) == {0, 2, 5}
