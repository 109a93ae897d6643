"""GENEX: explainable batch-effect removal for single-cell RNA-seq (a conditional translation GAN).

``GENEX`` is imported on first use, so ``genex_core.preprocessing`` (the project's one
normalisation and count check) stays usable without importing torch.
"""

__all__ = ["GENEX"]


def __getattr__(name: str):
    if name == "GENEX":
        from genex_core.model import GENEX

        return GENEX
    raise AttributeError(f"module 'genex_core' has no attribute {name!r}")
