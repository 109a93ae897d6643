"""Stage 3: DE and gene explanations, on integrated values and on the raw counts."""
