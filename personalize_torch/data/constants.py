"""Reserved column names of Amazon Personalize datasets, in one place.

Every module refers to these names instead of spelling the strings, so a typo is an import error.
"""

USER_ID = "USER_ID"
ITEM_ID = "ITEM_ID"
TIMESTAMP = "TIMESTAMP"
EVENT_TYPE = "EVENT_TYPE"
EVENT_VALUE = "EVENT_VALUE"
IMPRESSION = "IMPRESSION"
RECOMMENDATION_ID = "RECOMMENDATION_ID"
CREATION_TIMESTAMP = "CREATION_TIMESTAMP"

INTERACTIONS = "Interactions"
ITEMS = "Items"
USERS = "Users"
DATASET_TYPES = (INTERACTIONS, ITEMS, USERS)

# Fields each dataset type must have, and the Avro type each must be declared with.
REQUIRED_FIELDS = {
    INTERACTIONS: {USER_ID: ("string",), ITEM_ID: ("string",), TIMESTAMP: ("long", "int")},
    ITEMS: {ITEM_ID: ("string",)},
    USERS: {USER_ID: ("string",)},
}

# Reserved optional fields and the Avro types Personalize allows for them.
RESERVED_OPTIONAL_FIELDS = {
    INTERACTIONS: {
        EVENT_TYPE: ("string",),
        EVENT_VALUE: ("float", "double", "int", "long"),
        IMPRESSION: ("string",),
        RECOMMENDATION_ID: ("string",),
    },
    ITEMS: {CREATION_TIMESTAMP: ("long", "int")},
    USERS: {},
}

# Separator of multi-valued categorical fields and of IMPRESSION lists.
MULTI_VALUE_SEPARATOR = "|"

# Personalize's minimum data for training a custom solution.
MIN_INTERACTIONS = 1000
MIN_USERS_WITH_TWO_INTERACTIONS = 25

# Index 0 of every vocabulary is padding; real ids start at 1.
PADDING_IDX = 0
