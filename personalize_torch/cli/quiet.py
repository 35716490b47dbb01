"""What the training command leaves out of its output: Lightning's start-up banner and tips, and the few
warnings about choices this project makes on purpose. Called once, first thing in the command's main.

What stays: the progress bar, one line per validation epoch, the metrics report, errors, and every other
warning. Lightning's own informational lines (device banner, "💡 Tip" lines, "Seed set to", "`Trainer.fit`
stopped", the Tensor Cores hint) are logged at INFO on its loggers, which are set to WARNING here, as
Lightning's documentation suggests; training logs its own line saying where it runs.
"""

from __future__ import annotations

import logging
import warnings

# Lightning's loggers: `pytorch_lightning` sets its own level to INFO when it is imported, so this runs after.
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric")


def ignored_warnings() -> list[tuple[str, type[Warning]]]:
    """(message pattern, category) of each warning the command does not show, and why."""
    from lightning_fabric.utilities.warnings import PossibleUserWarning

    return [
        # The data loaders collate whole arrays in the training process, without per-row work; worker
        # processes would only copy those arrays.
        (r"The '\w+' does not have many workers", PossibleUserWarning),
        # Training says which device it uses; trainer.accelerator=cpu on a machine with a GPU is a choice.
        (r"GPU available but not used", PossibleUserWarning),
        # Inside Lightning (its pytree helper); nothing a user of this project can change.
        (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    ]


def quiet_lightning() -> None:
    """Set Lightning's loggers to WARNING and ignore `ignored_warnings()`, each by message and category."""
    import lightning_fabric  # noqa: F401  (imported first: importing them sets their loggers' levels)
    import pytorch_lightning  # noqa: F401

    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message, category in ignored_warnings():
        warnings.filterwarnings("ignore", message=message, category=category)
