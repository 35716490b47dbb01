"""The server's own operations on its campaigns: `GET /ping` (health, and which campaigns this worker
process serves) and `PUT /campaigns/{name}` (deploy a solution version, see `Campaigns.deploy`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from personalize_torch.errors import InputError
from personalize_torch.serving.campaigns import CAMPAIGN_NAME, Campaigns, DeployingDisabled, SolutionNotFound
from personalize_torch.serving.http.api_models import DeployRequest
from personalize_torch.serving.http.errors import access_denied, invalid_input, not_found

CampaignName = Annotated[str, Path(pattern=f"^{CAMPAIGN_NAME.pattern}$", description=(
    "The campaign: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (a new name adds a "
    "campaign)."))]


class CampaignHandlers:
    """`worker`: this process's index among the server's worker processes (0 with one)."""

    def __init__(self, campaigns: Campaigns, worker: int = 0):
        self.campaigns, self.worker = campaigns, worker

    def ping(self) -> dict:
        return {"status": "ok", "campaigns": self.campaigns.names(), "worker": self.worker}

    def deploy(self, name: CampaignName, req: DeployRequest) -> dict:
        """Deploy a solution version to a campaign (Personalize's CreateCampaign / UpdateCampaign) with no
        failed requests: the new predictor is loaded and warmed up (catalogue, one scoring pass) while the
        old one keeps serving, then swapped in with one dict assignment; requests already running finish
        on the old one. Only solution versions under the server's `deploy_root` can be deployed."""
        try:
            campaign = self.campaigns.deploy(name, req.solution, req.settings())
        except DeployingDisabled as err:
            raise access_denied(str(err)) from None
        except SolutionNotFound as err:
            raise not_found(err.describe()) from None
        except InputError as err:
            raise invalid_input(err.describe()) from None
        return {"campaign": name, "recipe": campaign.predictor.solution.recipe_name}
