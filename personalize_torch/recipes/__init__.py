"""Recipes by name: the one registry used to rebuild a saved solution version."""

from personalize_torch.recipes.base import Recipe
from personalize_torch.recipes.blend import Blend
from personalize_torch.recipes.hrnn import HRNN
from personalize_torch.recipes.hrnn_coldstart import HRNNColdstart
from personalize_torch.recipes.hrnn_meta import HRNNMeta
from personalize_torch.recipes.item_affinity import ItemAffinity, ItemAttributeAffinity
from personalize_torch.recipes.personalized_ranking import PersonalizedRanking
from personalize_torch.recipes.popularity_count import PopularityCount
from personalize_torch.recipes.similar_items import SimilarItems
from personalize_torch.recipes.sims import SIMS
from personalize_torch.recipes.trending_now import TrendingNow
from personalize_torch.recipes.user_personalization import UserPersonalization

RECIPES: dict[str, type[Recipe]] = {
    Blend.recipe_name: Blend,
    HRNN.recipe_name: HRNN,
    HRNNColdstart.recipe_name: HRNNColdstart,
    HRNNMeta.recipe_name: HRNNMeta,
    ItemAffinity.recipe_name: ItemAffinity,
    ItemAttributeAffinity.recipe_name: ItemAttributeAffinity,
    PersonalizedRanking.recipe_name: PersonalizedRanking,
    PopularityCount.recipe_name: PopularityCount,
    SimilarItems.recipe_name: SimilarItems,
    SIMS.recipe_name: SIMS,
    TrendingNow.recipe_name: TrendingNow,
    UserPersonalization.recipe_name: UserPersonalization,
}

__all__ = ["RECIPES", "Recipe"]
