"""The commands (Hydra entry points): `personalize-train` and `personalize-serve` once installed, or the
repository's train.py and serve.py, which call the same `main`."""
