"""Stage 4: score tables (scIB, distance to the truth, DE, explanations), their summaries, aggregates and the verdict."""
