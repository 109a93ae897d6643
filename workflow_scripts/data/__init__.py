"""Stage 1: datasets, simulated (Splat model) or imported, in the dataset contract."""
