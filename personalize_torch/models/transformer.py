"""A causal transformer over item sequences (SASRec-like, pre-LayerNorm), as a plain nn.Module.

Input: item indices (B, T), left-padded with 0, oldest to newest. Output: one hidden state per
position (B, T, C); `hidden @ item_embedding.T` scores every item as the next one. No Lightning, no
config objects: a notebook or another project can use it directly.

Item embeddings enter the first block multiplied by `item_input_scale` = sqrt(dim), as in SASRec (Kang &
McAuley 2018), while the position embeddings are added unscaled: both start at std 0.02, and without the
scale the positions weigh as much as the items (bench/RESULTS.md, "User-Personalization").
Checkpoints saved without the scale load with a scale of 1, so they score as they were trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from personalize_torch.models.older_checkpoints import fill_missing


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"hidden_dimension {dim} must be divisible by the number of heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: Tensor, attn_mask: Tensor, last_only: bool = False) -> Tensor:
        """(B, T, C) -> (B, T, C); with `last_only`, only the last position's output (B, 1, C)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        if last_only:
            q, attn_mask = q[:, -1:], attn_mask[..., -1:, :]
        q = q.view(B, q.shape[1], self.n_heads, C // self.n_heads).transpose(1, 2)              # (B, H, Tq, c)
        k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (k, v))  # (B, H, T, c)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, q.shape[2], C))


class Block(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor, last_only: bool = False) -> Tensor:
        y = self.drop(self.attn(self.ln1(x), attn_mask, last_only))
        x = (x[:, -1:] if last_only else x) + y
        return x + self.mlp(self.ln2(x))


class SequenceTransformer(nn.Module):
    def __init__(self, n_items: int, dim: int = 64, max_len: int = 50, n_layers: int = 2, n_heads: int = 2,
                 dropout: float = 0.2):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items, dim, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(dim)
        self.max_len = max_len
        self.register_buffer("item_input_scale", torch.tensor(float(dim) ** 0.5))
        # models trained before the scale existed read their item embeddings unscaled: scale 1
        self.register_load_state_dict_pre_hook(fill_missing("item_input_scale", "item_embedding.weight", _one))
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, items: Tensor, extra: Tensor | None = None, item_table: Tensor | None = None,
                last_only: bool = False) -> Tensor:
        """Hidden states (B, T, C) for left-padded `items` (B, T); `extra` (B, T, C) is added to the input;
        `item_table` (n_items, C) replaces the item embedding table (e.g. with metadata added).
        `last_only`: only the newest position's state (B, 1, C), what scoring the next item needs; the
        last block then attends from that one position only (the same numbers, less work)."""
        B, T = items.shape
        items = items[:, -self.max_len:]
        T = items.shape[1]
        valid = items > 0                                                        # (B, T)
        # Positions count back from the newest event, so the last event always has position 0.
        positions = torch.arange(T - 1, -1, -1, device=items.device)
        table = self.item_embedding.weight if item_table is None else item_table
        x = table[items] * self.item_input_scale + self.position_embedding(positions)[None]
        if extra is not None:
            x = x + extra[:, -T:]
        x = self.drop(x * valid.unsqueeze(-1))
        causal = torch.ones(T, T, dtype=torch.bool, device=items.device).tril()
        # Each position sees earlier valid events and itself (so padded rows never attend to nothing).
        attn_mask = causal[None] & (valid[:, None, :] | torch.eye(T, dtype=torch.bool, device=items.device)[None])
        attn_mask = attn_mask[:, None]                                           # (B, 1, T, T)
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask, last_only and i == len(self.blocks) - 1)
        return self.ln_f(x)

    def item_scores(self, hidden: Tensor, item_table: Tensor | None = None) -> Tensor:
        """Scores (..., n_items) of every item for hidden states (..., C); tied input/output embeddings."""
        table = self.item_embedding.weight if item_table is None else item_table
        return hidden @ table.T


def _one(_: Tensor) -> Tensor:
    return torch.tensor(1.0)
