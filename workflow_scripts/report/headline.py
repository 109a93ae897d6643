"""The verdict (``results/verdict.csv``, :mod:`workflow_scripts.score.verdict`) on one screen,
for the report and ``docs/results.md``."""

import pandas as pd

from workflow_scripts.names import CONTROL_GROUP, EXPLANATION, GROUPS
from workflow_scripts.score.intervals import ALPHA


def _value_text(row) -> str:
    """'0.712', or with its interval over seeds '0.712 [0.690, 0.734]' when there is one."""
    if row.get("n_seeds", 1) > 1 and not pd.isna(row.get("ci_low")):
        return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return f"{row['value']:.3f}"


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """The verdict on one screen: per aspect, the winner of each group and the controls' values."""
    rows = []
    for aspect, part in table.groupby("aspect", sort=False):
        row = {"aspect": aspect, "better": "higher" if part["higher_is_better"].iloc[0] else "lower"}
        for group in (*GROUPS.values(), EXPLANATION):
            top = part[(part["group"] == group) & (part["rank"] == 1)]
            if not top.empty:
                row[f"best, {group}"] = f"{top['method'].iloc[0]} ({_value_text(top.iloc[0])})"
                if "p_vs_best" in part:  # with replicates: the methods a paired t-test cannot tell apart from it
                    tied = part[(part["group"] == group) & (part["rank"] > 1) & (part["p_vs_best"] >= ALPHA)]
                    if not tied.empty:
                        row[f"best, {group}"] += "; not distinguishable from " + ", ".join(
                            f"{m} (p = {p:.2f})" for m, p in zip(tied["method"], tied["p_vs_best"], strict=True)
                        )
        controls = part[part["group"] == CONTROL_GROUP]
        row["controls"] = ", ".join(f"{r['method']} {_value_text(r)}" for _, r in controls.iterrows())
        rows.append(row)
    return pd.DataFrame(rows).fillna("")
