"""`python -m personalize_torch.data.imports ...`: the same command as
`python -m personalize_torch.data.import_jobs ...` (dataset import jobs), under a shorter name."""

from personalize_torch.data.import_jobs import main

if __name__ == "__main__":
    main()
