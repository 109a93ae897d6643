"""Every name the stages share: dataset keys, AnnData slots, comparison keys, score-table
columns and status strings. It imports nothing, so any module may import it; nothing else
defines these."""

# The dataset contract (docs/contract.md)
BATCH_KEY = "batch"
LABEL_KEY = "cell_type"
UNLABELLED = "no_label"  # the label column of a dataset configured with `label_key: null`
TRUTH_MEANS = "batchfree_means"  # layer: the simulation's batch-free expected expression
TRUTH_COUNTS = "batchfree_counts"  # layer: counts drawn from it
DATASET_UNS = "dataset"  # uns entry recording the dataset's name, keys and provenance

# What an integration writes (results/<dataset>/integrated/<method>.h5ad)
EMBEDDING = "X_emb"  # obsm
CORRECTED = "corrected"  # layer: corrected expression, for methods that return it
METHOD_UNS = "method"  # uns: the method's name, parameters, time and memory

# Comparisons of DE and explanations
ALL_CELLS = "all"  # a comparison over every cell type
REST = "rest"  # the reference "every other cell"

# Score tables (one row per dataset, method, representation, category, metric, scaling)
COLUMNS = ["dataset", "method", "representation", "category", "metric", "scaling", "value", "note", "status"]
OK = "ok"
NEEDS_COUNTS = "skipped: needs raw counts"  # a count-only step on a `counts: false` dataset
NEEDS_LABELS = "skipped: needs labels"  # a label-using method on a dataset without labels
NULL = "not applicable: null, no simulated effect"
NO_DE_TRUTH = "not applicable: no simulated DE factors"
NO_EXPRESSION_TRUTH = "not applicable: no batch-free truth"
NO_EXPLAIN_TRUTH = "not applicable: no simulated gene effects"
SUBSAMPLED = "subsampled"  # note of a metric computed on a subsample of the cells

# Who is ranked with whom (verdict, figures)
GROUPS = {True: "uses labels", False: "label-free"}  # methods, by whether they were given the labels
CONTROL_GROUP = "control"
EXPLANATION = "explanation"

# Explanation tables (results/<dataset>/explain/<method>.csv.gz)
EXPLAIN_KEYS = ["covariate", "level", "cell_type"]
