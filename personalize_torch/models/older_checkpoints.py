"""Loading checkpoints saved before a buffer existed: the buffer gets the value that reproduces the old model.

    self.register_load_state_dict_pre_hook(fill_missing("item_log_exposure", "item_bias", torch.zeros_like))

The hook is a `functools.partial` of a module-level function, and `make` should be one too (not a lambda),
so the module stays picklable.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import Tensor


def _fill_missing(key: str, present: str, make: Callable[[Tensor], Tensor], module, state_dict: dict, prefix: str,
                  *args) -> None:
    if prefix + key not in state_dict and prefix + present in state_dict:
        state_dict[prefix + key] = make(state_dict[prefix + present])


def fill_missing(key: str, present: str, make: Callable[[Tensor], Tensor]):
    """A load_state_dict pre-hook: when the state dict has `present` but not `key` (a checkpoint from before
    `key` existed), `key` becomes `make(state_dict[present])`."""
    return partial(_fill_missing, key, present, make)
