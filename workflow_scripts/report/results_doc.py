"""``docs/results.md`` written from a run's tables, so no measured number is typed by hand:

    .venv/bin/python -m workflow_scripts.report.results_doc results > docs/results.md

It says when, on which commit and config the tables were made, then the verdict, the scIB
overall score, the distance to the truth, DE and explanation accuracy per dataset, and the
time of each stage.
"""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from workflow_scripts.names import OK
from workflow_scripts.report.cost import stage_summary
from workflow_scripts.report.headline import headline
from workflow_scripts.score.table import read_score_table


def _markdown(table: pd.DataFrame) -> str:
    """A table as GitHub markdown, values to 3 decimals, missing values as '–'."""
    cells = table.map(lambda v: "–" if pd.isna(v) else f"{v:.3f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(map(str, cells.columns)) + " |", "|" + "---|" * len(cells.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def _by_dataset(table: pd.DataFrame, keep: pd.Series, columns: list[str] = ("method",)) -> pd.DataFrame:
    """Rows ``keep`` of a summary table as method rows x dataset columns (the status where a
    method did not run)."""
    rows = table[keep].copy()
    rows["cell"] = rows["value"].where(rows["status"] == OK, rows["status"])
    rows["method"] = rows["method"] + rows["uses_labels"].map({True: " [labels]", False: ""}).fillna("")
    wide = rows.pivot_table(index=list(columns), columns="dataset", values="cell", aggfunc="first", sort=False)
    return wide.reset_index()


def results_markdown(results: str | Path) -> str:
    results = Path(results)
    scib, truth, explain = (read_score_table(results / f"{n}_summary.csv") for n in ("scib", "truth", "explain"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    best = scib[(scib["metric"] == "overall") & (scib["scaling"] == "raw")]
    best = best.loc[best.groupby(["dataset", "method"])["value"].idxmax().dropna()] if best["value"].notna().any() else best
    missing = scib[(scib["metric"] == "overall") & (scib["status"] != OK)].drop_duplicates(["dataset", "method"])
    overall = pd.concat([best, missing], ignore_index=True)
    de = truth[(truth["metric"] == "auprc") & (truth["category"] == "cell_type_pair")].copy()
    de["method"] = de["method"].where(de["representation"] == "wilcoxon", de["representation"] + " (raw counts)")
    auprc = explain[(explain["metric"] == "auprc") & (explain["category"] != "cell_type") & (explain["status"] == OK)]
    explained = auprc.groupby(["dataset", "method"], sort=False)["value"].mean().reset_index()
    explained = explained.assign(status=OK, uses_labels=False)
    rows = auprc.groupby(["category", "representation", "method"], sort=False)["value"].mean().unstack("method")
    parts = [
        "# Results of the default benchmark",
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python -m workflow_scripts.report.results_doc {results}` "
        f"from the tables of a run at commit `{commit or 'unknown'}` (config: `config/config.yaml`).",
        "## Verdict\n\nThe best of each group by the mean over datasets; `[labels]`: given the cell-type labels.\n\n"
        + _markdown(headline(pd.read_csv(results / "verdict.csv"))),
        "## scIB overall (raw; each method's best representation)\n\n"
        + _markdown(_by_dataset(overall, overall.index == overall.index)),
        "## Distance to the batch-free truth (MSE, lower is better)\n\n"
        + _markdown(_by_dataset(truth, (truth["metric"] == "mse") & (truth["representation"] == "corrected"))),
        "## DE between cell types (AUPRC; Wilcoxon on corrected values, or a workflow on raw counts)\n\n"
        + _markdown(_by_dataset(de, de.index == de.index)),
        "## Explanations of batch and covariates (AUPRC, mean over covariates and scopes)\n\n"
        "Cell types are scored as DE above (GENEX translates batch and covariates, not cell types).\n\n"
        + _markdown(_by_dataset(explained, explained.index == explained.index))
        + "\n\nRow by row (mean over datasets and levels):\n\n"
        + _markdown(rows.reset_index()),
        "## Time per stage\n\n```\n" + stage_summary(results) + "\n```",
    ]
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.stdout.write(results_markdown(sys.argv[1] if len(sys.argv) > 1 else "results"))
