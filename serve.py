"""Serve solution versions over HTTP with Personalize Runtime's and Events' APIs (= `personalize-serve`).

    python serve.py solution=<dir> port=8080 [events_db=outputs/serve/events.sqlite]
    python serve.py 'campaigns={shop: outputs/a/solution, news: outputs/b/solution}'
    python serve.py solution=<dir> workers=2      # one process per core (POSIX), sharing events_db

The command itself: personalize_torch/cli/serve.py; its configs: personalize_torch/configs/ (also `configs/`).
"""

from personalize_torch.cli.serve import main

if __name__ == "__main__":
    main()
