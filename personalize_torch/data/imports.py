"""`python -m personalize_torch.data.imports ...` runs `python -m personalize_torch.data.import_jobs ...`
(the dataset import jobs): the command keeps working under its first name."""

from personalize_torch.data.import_jobs import main

if __name__ == "__main__":
    main()
