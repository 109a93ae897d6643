"""Names used across ``genex_core``: files of a saved model, registry fields, modes."""

WEIGHTS_FILE = "model.pt"
REGISTRY_FILE = "registry.json"

MODE_LABELS = "label-conditioned"
MODE_LABEL_FREE = "label-free"

# Registry fields (the JSON written next to the weights).
SETUP_ARGS = "setup_args"
CATEGORIES = "categories"
VAR_NAMES = "var_names"
MODULE_ARGS = "module_args"
TRAIN_ARGS = "train_args"
HISTORY = "history"
MODE = "mode"
IS_TRAINED = "is_trained"
