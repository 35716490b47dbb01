"""Train a recipe and save a solution version: `personalize-train` (installed) or `python train.py` (repository).

    python train.py                                   # demo data, Popularity-Count
    python train.py recipe=popularity_count data.interactions=interactions.csv output_dir=model/
    python train.py data=ml100k                       # a benchmark from ../shared/data
    python train.py -m hparams_search=hrnn            # Optuna search; best solution in <sweep dir>/best/
    python train.py -m automl=default                 # Personalize's performAutoML across recipes
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from personalize_torch.cli.quiet import quiet_lightning
from personalize_torch.errors import InputError
from personalize_torch.log_format import check_log_format
from personalize_torch.report import format_training_report
from personalize_torch.solution_config import sweep_command


@hydra.main(version_base="1.3", config_path="pkg://personalize_torch.configs", config_name="train")
def main(cfg: DictConfig) -> dict:
    quiet_lightning()
    from personalize_torch.training import train

    try:
        # Hydra has set up the log lines in this format (hydra/job_logging/text_or_json.yaml); JSON lines are not
        # interleaved with the progress bar's.
        if check_log_format(cfg.log_format) == "json":
            with open_dict(cfg):
                cfg.trainer.enable_progress_bar = False
        if HydraConfig.get().mode != RunMode.MULTIRUN and cfg.get("solution_config"):
            sweep = sweep_command(cfg.solution_config)
            if sweep is not None:
                raise InputError(f"{sweep[0]} asks for a search, which one training cannot do: run {sweep[1]}",
                                 file=str(cfg.solution_config), column=sweep[0])
        result = train(cfg)
    except InputError as err:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweeper records the trial as failed (or the AutoML candidate as skipped) and goes on
        print(f"error: {err.describe()}", file=sys.stderr)
        sys.exit(2)
    print(format_training_report(result))
    return result  # the sweepers read the objective from it


if __name__ == "__main__":
    main()
