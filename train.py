"""Train a recipe and save a solution version (the same command as `personalize-train`).

    python train.py                                   # demo data, Popularity-Count
    python train.py recipe=popularity_count data.interactions=interactions.csv output_dir=model/
    python train.py data=ml100k                       # a benchmark from ../shared/data
    python train.py -m hparams_search=hrnn            # Optuna search; best solution in <sweep dir>/best/
    python train.py -m automl=default                 # Personalize's performAutoML across recipes

The command itself: personalize_torch/cli/train.py; its configs: personalize_torch/configs/ (also `configs/`).
"""

from personalize_torch.cli.train import main

if __name__ == "__main__":
    main()
