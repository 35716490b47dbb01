"""Train a recipe and save a solution version.

    python train.py                                   # demo data, Popularity-Count
    python train.py recipe=popularity_count data.interactions=interactions.csv output_dir=model/
    python train.py data=ml100k                       # a benchmark from ../shared/data
"""

import sys

import hydra
from omegaconf import DictConfig

from personalize_torch.errors import InputError
from personalize_torch.report import format_training_report


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    from personalize_torch.training import train

    try:
        result = train(cfg)
    except InputError as err:
        print(f"error: {err.describe()}", file=sys.stderr)
        sys.exit(2)
    print(format_training_report(result))


if __name__ == "__main__":
    main()
