"""Serve solution versions over HTTP with Personalize Runtime's API.

    python serve.py solution=<dir> port=8080
    python serve.py 'campaigns={shop: outputs/a/solution, news: outputs/b/solution}'
"""

import sys

import hydra
from omegaconf import DictConfig

from personalize_torch.errors import InputError


@hydra.main(version_base="1.3", config_path="configs", config_name="serve")
def main(cfg: DictConfig) -> None:
    import uvicorn

    from personalize_torch.serving.app import create_app
    from personalize_torch.serving.predictor import Predictor

    try:
        paths = dict(cfg.campaigns or {})
        if cfg.solution:
            paths.setdefault("default", cfg.solution)
        if not paths:
            raise InputError("nothing to serve: give solution=<dir> or campaigns={name: dir}", column="solution")
        campaigns = {name: Predictor.from_dir(path, device=cfg.device) for name, path in paths.items()}
    except InputError as err:
        print(f"error: {err.describe()}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(create_app(campaigns), host=cfg.host, port=cfg.port, log_level=cfg.log_level)


if __name__ == "__main__":
    main()
