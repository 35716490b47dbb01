"""An item table rounded to bfloat16 for a first pass over a large catalogue, with a bound of its error.

    approximate = RoundedItemTable(table, bias).logits(query)     # (B, N) bfloat16: query . table + bias
    |approximate - (query @ table.T + bias)| <= error_bound(query)  # per row, for every item

Scoring 1M items in float32 on a CPU is one (B, 64) x (64, 1M) matmul per batch of requests, compute-bound
at ~20 GFLOP/s on one core of the machines this project is measured on (bench/RESULTS.md, "Serving at
scale"). The same product with bfloat16 inputs (fp32 accumulation: AVX512-BF16 / AMX through oneDNN, the
weights packed once for it) reads half the bytes and runs several times faster. Its scores are not the
exact ones, but they are within a bound computed from the rounding errors, so a first pass over them
finds every item that can be in the exact top k (`CatalogueScorer.top_k` then rescores those exactly).

The bound, for a query q (float32), its rounding q~, an item's rounded embedding e~_i and bias b~_i:

    |q . e_i + b_i - fl(q~ . e~_i + b~_i)|
        <= |q| |e_i - e~_i| + |q - q~| |e~_i| + |b_i - b~_i| + (2^-7 + (C + 1) 2^-23) (|q~| |e~_i| + |b~_i|)

(Cauchy-Schwarz for the rounded inputs; float32 accumulation of C + 1 terms; the result rounded to
bfloat16, 2^-8 relative to nearest, taken as 2^-7 so that a truncating kernel is covered too). Maxima over
the items make it one number per query row.
"""

from __future__ import annotations

import torch
from torch import Tensor

PACKED_MIN_ROWS = 2   # one query row: the plain bfloat16 matrix-vector product is faster than the packed one
LOG2_E = 1.4426950408889634
CHUNK = 1 << 15       # items per piece of `scan`: a (B, CHUNK) piece of logits stays in the core's cache


def packed_bfloat16_available(device: torch.device) -> bool:
    """Whether oneDNN's packed bfloat16 matmul runs natively here (a CPU with AVX512-BF16 or AMX)."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:   # private oneDNN ops (those torch.compile's CPU backend uses): packing a tiny table tells they exist
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros(2, 2, dtype=torch.bfloat16), 1)
        return True
    except (AttributeError, RuntimeError):
        return False


class RoundedItemTable:
    """The (N, C) item table and (N,) bias rounded to bfloat16 (packed for oneDNN when `packed`), with the
    maxima `error_bound` needs. Built once per served model."""

    def __init__(self, table: Tensor, bias: Tensor, packed: bool):
        table, bias = table.detach().float(), bias.detach().float()
        self.table = table.to(torch.bfloat16).contiguous()                                  # (N, C)
        self.bias = bias.to(torch.bfloat16).contiguous()                                    # (N,)
        rounded = self.table.float()
        self.residual = float((table - rounded).norm(dim=1).max()) if len(table) else 0.0   # max |e - e~|
        self.norm = float(rounded.norm(dim=1).max()) if len(table) else 0.0                # max |e~|
        self.bias_error = float((bias - self.bias.float()).abs().max()) if len(bias) else 0.0
        self.bias_max = float(self.bias.float().abs().max()) if len(bias) else 0.0
        self.relative = 2.0 ** -7 + (table.shape[1] + 1) * 2.0 ** -23
        self._pieces = [(start, min(start + CHUNK, len(table))) for start in range(0, len(table), CHUNK)]
        self._packed_pieces = [torch.ops.mkldnn._reorder_linear_weight(self.table[a:b], 8)
                               for a, b in self._pieces] if packed else None

    def logits(self, query: Tensor) -> Tensor:
        """(B, N) bfloat16 approximations of `query @ table.T + bias` for a (B, C) float32 query (item 0, the
        padding, at -inf)."""
        out = torch.empty(query.shape[0], len(self.table), dtype=torch.bfloat16, device=query.device)
        self.scan(query, out)
        return out

    def scan(self, query: Tensor, out: Tensor) -> tuple[Tensor, Tensor]:
        """`logits(query)` written into `out` (B, N) bfloat16, with item 0 (padding) at -inf, and in the same
        pass, piece by piece while each piece is in cache: each row's largest logit `peak` (B,) and the sum
        of exp(logit - peak) over every item (B,) float64 (a softmax's normaliser, as flash attention keeps
        one: each piece's sum rescaled to the running maximum)."""
        B = query.shape[0]
        rounded = query.to(torch.bfloat16)
        peak = torch.full((B,), -torch.inf, device=query.device)
        total = torch.zeros(B, dtype=torch.float64, device=query.device)
        terms = torch.empty(B, CHUNK, device=query.device)
        for p, (a, b) in enumerate(self._pieces):
            piece = out[:, a:b]
            if self._packed_pieces is not None and B >= PACKED_MIN_ROWS:
                piece.copy_(torch.ops.mkldnn._linear_pointwise(rounded, self._packed_pieces[p], self.bias[a:b],
                                                                "none", [], ""))
            else:
                torch.addmm(self.bias[a:b], rounded, self.table[a:b].T, out=piece)
            if a == 0:
                piece[:, 0] = -torch.inf
            piece_terms = terms[:, :b - a].copy_(piece)                 # float32: torch reduces it faster
            piece_peak = torch.maximum(piece_terms.amax(1), peak)
            piece_terms.sub_(piece_peak.unsqueeze(1)).mul_(LOG2_E).exp2_()   # exp: exp2 is ~3x faster on CPU
            total = total * torch.exp((peak - piece_peak).double()).nan_to_num_(0.0) + piece_terms.sum(1).double()
            peak = piece_peak
        return peak, total

    def error_bound(self, query: Tensor) -> Tensor:
        """(B,) float32: for each query row, a bound of |logits - exact| over every item (module docstring)."""
        query = query.float()
        rounded = query.to(torch.bfloat16).float()
        return (query.norm(dim=1) * self.residual + (query - rounded).norm(dim=1) * self.norm + self.bias_error
                + self.relative * (rounded.norm(dim=1) * self.norm + self.bias_max))
