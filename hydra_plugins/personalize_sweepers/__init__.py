"""Hydra sweepers for personalize-torch: `personalize_optuna` (hyperparameter search over current Optuna)
and `personalize_automl` (Personalize's performAutoML across recipes). See `sweepers.py`.

`hydra_plugins` is a namespace package (no `__init__.py`): Hydra imports every module under it at start-up
and registers the Sweeper subclasses it finds; the ConfigStore entries in `sweepers.py` make
`override /hydra/sweeper: personalize_optuna` resolvable.
"""
