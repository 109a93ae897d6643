"""Every integration method and control, one entry each: what it needs and what it returns.

A leaf module (no scanpy, no torch): the rules, the scorers, the figures and the report read
the methods' properties from here, and ``integrate.py`` resolves each runner by name only when
it runs it. Adding a method is one entry here and one ``run_<name>`` function (signature in
``workflow_scripts/integrate/baseline.py``).
"""

from dataclasses import dataclass

from workflow_scripts.names import NEEDS_COUNTS, NEEDS_LABELS


@dataclass(frozen=True)
class Method:
    """One integration method or control.

    Attributes
    ----------
    runner
        ``"module:function"`` of its runner (resolved on use, so this module stays a leaf).
    returns_expression
        Writes ``layers["corrected"]`` (log1p CP10k), not only an embedding.
    uses_labels
        Is given the cell-type labels: label-using methods are ranked apart from label-free ones.
    needs_counts
        Models raw counts: skipped on a dataset whose X holds log values (``counts: false``).
    control
        A control (floor or ceiling), never ranked among the methods.
    saves_model
        Writes its trained model beside its output, for later stages.
    starts_from
        The method whose saved model it starts from (scANVI from scVI).
    """

    runner: str
    returns_expression: bool
    uses_labels: bool = False
    needs_counts: bool = False
    control: bool = False
    saves_model: bool = False
    starts_from: str | None = None

    def skip_reason(self, has_labels: bool, has_counts: bool) -> str | None:
        """Why this method cannot run on a dataset, or None when it can."""
        if self.uses_labels and not has_labels:
            return NEEDS_LABELS
        if self.needs_counts and not has_counts:
            return NEEDS_COUNTS
        return None


_M = "workflow_scripts.integrate.methods:"
_C = "workflow_scripts.integrate.controls:"
_B = "workflow_scripts.integrate.baseline:"

METHODS: dict[str, Method] = {
    "genex": Method(_M + "run_genex", True, uses_labels=True, needs_counts=True, saves_model=True),
    "genex_label_free": Method(_M + "run_genex_label_free", True, needs_counts=True),
    "genex_published": Method(_M + "run_genex_published", True, uses_labels=True, needs_counts=True),
    "label_shift": Method(_M + "run_label_shift", True, uses_labels=True),
    "scanvi": Method(_M + "run_scanvi", True, uses_labels=True, needs_counts=True, starts_from="scvi"),
    "scvi": Method(_M + "run_scvi", True, needs_counts=True, saves_model=True),
    "harmony": Method(_M + "run_harmony", False),
    "combat": Method(_M + "run_combat", True),
    "scanorama": Method(_M + "run_scanorama", True),
    "unintegrated": Method(_B + "run_unintegrated", True, control=True),
    "truth": Method(_C + "run_truth", True, control=True),
    "shuffled": Method(_C + "run_shuffled", True, control=True),
}
CONTROLS = frozenset(name for name, m in METHODS.items() if m.control)
EXPRESSION_METHODS = frozenset(name for name, m in METHODS.items() if m.returns_expression)
LABEL_METHODS = frozenset(name for name, m in METHODS.items() if m.uses_labels)


# Explanation methods: GENEX's (``genex`` and ``genex_<name>`` entries of the config) and the
# rival rankings of workflow_scripts/analyse/explain.py.
GENEX = "genex"
EXPLAIN_RIVALS = ("stratified_lfc", "mean_difference", "wilcoxon_raw", "ols_batch", "scvi_de", "mrvi", "random")
_EXPLAIN_NEEDS_COUNTS = ("scvi_de", "mrvi")


def explain_needs_counts(method: str) -> bool:
    """Whether an explanation method models raw counts (skipped on ``counts: false`` data):
    GENEX's and the model-based rivals."""
    return method.split("_")[0] == GENEX or method in _EXPLAIN_NEEDS_COUNTS
