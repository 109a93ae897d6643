"""GENEX: explainable batch-effect removal for single-cell RNA-seq (a conditional translation GAN)."""

from genex_core.model import GENEX

__all__ = ["GENEX"]
