"""GENEX: explainable batch-effect removal for single-cell RNA-seq (a conditional translation GAN)."""
