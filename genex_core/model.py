"""The AnnData-facing GENEX model: set-up, training, getters, save and load.

Follows scvi-tools' split: :class:`~genex_core.module.GenexModule` holds the networks and the
losses; :class:`GENEX` registers the data once, owns the training loop and turns AnnData into
minibatches and back into arrays the caller writes into ``layers`` / ``obsm``.
"""

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from genex_core import _constants as C
from genex_core._atomic import check_not_newer, replace_atomically
from genex_core.data import BalancedSampler, Registry, as_keys, encode, minibatch, register, sequential_chunks
from genex_core.module import DiscriminatorLoss, GenexModule, GeneratorLoss

logger = logging.getLogger(__name__)

# Training defaults, chosen by measurement on 2,000 cells x 1,000 genes on CPU threads (see
# the class docstring).
DEFAULT_HIDDEN = (256, 128)
CELL_PASSES = 200_000  # default epochs: this many cells drawn in all, i.e. ~300 generator steps
EPOCH_RANGE = (20, 100)
DEFAULT_BATCH_SIZE = 128
DEFAULT_LR = 1e-3
ADAM_BETAS = (0.5, 0.9)
CRITIC_LR_FACTOR = 3.0  # the critic learns 3x faster than G (two time-scale update rule)
OFFSET_LR_FACTOR = 10.0  # group offsets are plain per-gene shifts: they can take larger steps
INFERENCE_BATCH = 1024


DEVICES = "'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N' (the N-th GPU)"


def _resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA if available, else CPU. An explicit CUDA request without a GPU falls
    back to the CPU with one warning line. Anything else torch cannot parse is a ValueError
    naming the allowed devices."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        hint = " (a GPU is 'cuda')" if str(device).lower().startswith("gpu") else ""
        raise ValueError(f"device={device!r} is not a device{hint}; use {DEVICES}.") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        logger.warning("GENEX: device '%s' requested but CUDA is not available; using the CPU.", device)
        return torch.device("cpu")
    return resolved


def default_epochs(n_cells: int) -> int:
    """``CELL_PASSES / n_cells`` clipped to ``EPOCH_RANGE``: about as many generator steps
    whatever the data size (100 epochs for 2,000 cells, 20 from 10,000 cells on), like
    scvi-tools' cell-count heuristic."""
    return int(min(max(round(CELL_PASSES / n_cells), EPOCH_RANGE[0]), EPOCH_RANGE[1]))


class GENEX:
    """GENEX batch correction: a conditional translation GAN over log1p(CP10k) expression.

    Each cell is translated by a generator to target codes (batch, cell type, covariates)
    while a critic scores realness and classifies the codes; corrected expression is every
    cell translated to the *neutral* batch code, keeping its own label and covariate codes.
    The neutral code is trained (see :mod:`genex_core.module`), unlike the published zero
    embedding.

    Parameters
    ----------
    adata
        Raw counts (non-negative integers) in ``X`` or in ``layers[layer]``, sparse or dense.
        Not copied; read minibatch by minibatch.
    batch_key
        ``obs`` column with the technical batch (at least 2 levels).
    label_key
        ``obs`` column with cell types: label-conditioned mode, the published full model.
        ``None``: label-free mode (published "GENEX (Batch)"), where the codes enter the
        decoder so the embedding depends on expression alone.
    covariate_keys
        Further categorical ``obs`` columns to condition on (and to explain later); one
        column may be given as a string.
    layer
        Layer holding the counts; ``None`` for ``X``.
    hidden
        Encoder widths, mirrored by the decoder, also the critic's. Published: (1024, 512).
        The first and last layers (genes x width) dominate the cost. On 2,000 cells x 1,000
        genes the default (256, 128) mixes batches to the batch-free floor in ~40 CPU-thread
        seconds, where (1024, 512) has not begun to mix; (128, 64) costs ~2/3 as much per
        epoch and mixes slightly less in the same number of epochs (a choice for large data).
    latent, embedding_dim, dropout
        Embedding width (published 32), covariate embedding width (16), dropout (0.16).

    Notes
    -----
    Training departs from the published recipe where measurement said so (2,000 cells x
    1,000 genes, CPU): Adam (betas 0.5, 0.9) instead of DoG with polynomial weight
    averaging (no extra dependency; an exponential average of G lagged the translations
    badly at a few hundred G steps, so the last weights are used); exactly ``n_critic``
    critic steps per generator step, counted over the whole run (the published counter
    restarted every epoch); the gradient penalty every ``gp_every`` = 4 critic steps with its
    weight scaled to match (same quality, ~30% less time than every step). The neutral code
    is trained and calibrated by a moment term (:mod:`genex_core.module`).

    In label-free mode the moment term can only compare whole batches, so cell-type
    composition that differs between batches, and batch effects that differ between cell
    types, are partly left in or partly removed as batch: prefer labels when they exist.
    """

    def __init__(
        self,
        adata: ad.AnnData,
        batch_key: str = "batch",
        label_key: str | None = "cell_type",
        covariate_keys: Sequence[str] = (),
        layer: str | None = None,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        latent: int = 32,
        embedding_dim: int = 16,
        dropout: float = 0.16,
    ):
        registry = register(adata, batch_key, label_key, as_keys(covariate_keys), layer)
        module_args = {
            "n_genes": adata.n_vars,
            "n_levels": registry.n_levels,
            "hidden": [int(h) for h in hidden],
            "latent": int(latent),
            "embedding_dim": int(embedding_dim),
            "dropout": float(dropout),
            "label_conditioned": label_key is not None,
        }
        self._setup(adata, registry, module_args)

    def _setup(self, adata: ad.AnnData, registry: Registry, module_args: dict) -> None:
        """Encode ``adata`` with ``registry`` and build an untrained module (shared with load)."""
        self.adata = adata
        self.registry = registry
        self._counts, self._codes = encode(adata, registry)
        self.module_args = module_args
        with torch.random.fork_rng(devices=[]):  # weights are drawn again, seeded, by train()
            self.module = GenexModule(**module_args)
        self.device = torch.device("cpu")
        self.history: dict[str, list] = {}
        self.train_args: dict | None = None
        self.is_trained = False
        self._started_ns = time.time_ns()  # made (or loaded); train() sets it again: see save()

    @property
    def mode(self) -> str:
        """``"label-conditioned"`` or ``"label-free"``: which model produced the outputs."""
        return C.MODE_LABELS if self.registry.label_key else C.MODE_LABEL_FREE

    @property
    def var_names(self) -> list[str]:
        """The genes the model was set up with, in order."""
        return list(self.registry.var_names)

    @property
    def info(self) -> dict:
        """JSON-able provenance of the outputs (mode, set-up, architecture, training), for
        the caller to store next to them, e.g. in ``uns``."""
        return {
            C.MODE: self.mode,
            C.SETUP_ARGS: self.registry.setup_args(),
            C.MODULE_ARGS: self.module_args,
            C.TRAIN_ARGS: self.train_args,
        }

    def train(
        self,
        max_epochs: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        lr: float = DEFAULT_LR,
        n_critic: int = 5,
        gp_every: int = 4,
        neutral_prob: float = 0.5,
        deviation_every: int = 2,
        device: Literal["auto", "cpu", "cuda"] | str = "auto",
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        """Train from scratch; the result depends only on the data, the arguments and ``seed``.

        Parameters
        ----------
        max_epochs
            Epochs; each draws as many cells as the data holds, batch-balanced. ``None``:
            :func:`default_epochs` (100 for 2,000 cells).
        batch_size
            Cells per minibatch (at least 2, for BatchNorm).
        lr
            Adam learning rate of the generator's networks; the critic uses 3x (two
            time-scale rule) and the group offsets 10x.
        n_critic
            Critic steps per generator step.
        gp_every
            Compute the gradient penalty every this many critic steps (lazy regularisation),
            weighted by the same factor.
        neutral_prob
            Share of translation targets that are the neutral code (with the cell's own other
            codes); the rest are drawn uniformly.
        deviation_every
            Generator steps between exact measurements, over all cells, of the neutral
            translations' group means that the moment term corrects (and at the end of every
            epoch). Measured once per epoch, the term kept pushing along a stale direction on
            large data: on the GENEX paper's design (8,000 cells, ~12 generator steps per
            epoch) the batches stayed unmixed after 25 and 50 epochs (every cell's 15 nearest
            neighbours in PCA(50) of the corrected values were of its own batch; mean
            |deviation| about 0.3); measured every 2 steps, 33% were (28% if fully mixed;
            deviation 0.007), at twice the training time. On 1,200 cells an epoch has about
            2 generator steps, so 2 measures about once per epoch, as before.
        device
            ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed
            Seeds weights, sampling, targets and dropout, locally (global RNG state is
            restored). On the CPU two runs with the same seed and thread count are identical.
        progress
            Show one progress bar over epochs with the losses.
        """
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (BatchNorm needs 2 cells), got {batch_size}.")
        if max_epochs is None:
            max_epochs = default_epochs(self._codes.shape[0])
        if max_epochs < 1 or n_critic < 1 or gp_every < 1 or deviation_every < 1:
            raise ValueError("max_epochs, n_critic, gp_every and deviation_every must be positive.")
        if not 0.0 < neutral_prob < 1.0:
            raise ValueError(f"neutral_prob must be in (0, 1), got {neutral_prob}.")
        device = _resolve_device(device)
        self.train_args = {
            "max_epochs": max_epochs, "batch_size": batch_size, "lr": lr, "betas": list(ADAM_BETAS),
            "n_critic": n_critic, "gp_every": gp_every, "neutral_prob": neutral_prob,
            "deviation_every": deviation_every, "device": str(device),
            "seed": seed, "torch_threads": torch.get_num_threads(),
        }
        self.is_trained = False
        self._started_ns = time.time_ns()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.module.reset_parameters()
            self.module.to(device).train()
            self.device = device
            self.history = self._fit(device, torch.Generator().manual_seed(seed), progress)
        self.module.eval()
        self.is_trained = True

    def _fit(self, device: torch.device, generator: torch.Generator, progress: bool) -> dict[str, list]:
        """The training loop; returns the per-epoch history."""
        args, module = self.train_args, self.module
        G, D = module.generator, module.discriminator
        offsets = [G.offsets.weight]
        networks = [p for p in G.parameters() if p is not G.offsets.weight]
        opt_g = torch.optim.Adam(
            [{"params": networks}, {"params": offsets, "lr": OFFSET_LR_FACTOR * args["lr"]}], lr=args["lr"], betas=ADAM_BETAS
        )
        opt_d = torch.optim.Adam(D.parameters(), lr=CRITIC_LR_FACTOR * args["lr"], betas=ADAM_BETAS)
        sampler = BalancedSampler(self._codes[:, 0], args["batch_size"], generator)
        losses = (("d", DiscriminatorLoss), ("g", GeneratorLoss))
        history: dict[str, list] = {f"{prefix}_{f.name}": [] for prefix, cls in losses for f in fields(cls)}
        history["neutral_deviation"], history["elapsed_s"] = [], []
        module.set_anchor(*self._group_sums(lambda x, c: x))
        deviation = self._measure_deviation()
        step, since, start = 0, 0, time.perf_counter()  # since: generator steps since the last measurement
        bar = tqdm(range(args["max_epochs"]), desc="GENEX", unit="epoch", disable=not progress)
        for _ in bar:
            module.train()
            sums = {key: torch.zeros((), device=device) for key in history if key[:2] in ("d_", "g_")}
            n_d = n_g = 0
            for idx in sampler:
                x, codes = minibatch(self._counts, self._codes, idx, device)
                targets = module.sample_targets(codes, generator, args["neutral_prob"])
                gp_scale = args["gp_every"] if step % args["gp_every"] == 0 else 0
                d_loss = module.discriminator_loss(x, codes, targets, gp_scale)
                opt_d.zero_grad(set_to_none=True)
                d_loss.total.backward()
                opt_d.step()
                _accumulate(sums, "d_", d_loss)
                step, n_d = step + 1, n_d + 1
                if step % args["n_critic"] == 0:
                    D.requires_grad_(False)  # G's step needs gradients through D, not of D
                    g_loss = module.generator_loss(x, codes, targets)
                    opt_g.zero_grad(set_to_none=True)
                    g_loss.total.backward()
                    opt_g.step()
                    D.requires_grad_(True)
                    _accumulate(sums, "g_", g_loss)
                    n_g, since = n_g + 1, since + 1
                    if since == args["deviation_every"]:
                        deviation, since = self._measure_deviation(), 0
            for key, total in sums.items():  # an epoch without a generator step records None
                n = n_d if key.startswith("d_") else n_g
                history[key].append(total.item() / n if n else None)
            if since:
                deviation, since = self._measure_deviation(), 0
            history["neutral_deviation"].append(deviation)
            history["elapsed_s"].append(time.perf_counter() - start)
            bar.set_postfix({k: f"{v[-1]:.3g}" for k, v in history.items() if k in _SHOWN and v[-1] is not None})
        return history

    def _measure_deviation(self) -> float:
        """Set the moment term's deviations from one exact pass over all cells (see
        :meth:`GenexModule.set_deviation`) and return their mean |value|; training mode after."""
        deviation = self.module.set_deviation(*self._group_sums(self._neutral))
        self.module.train()
        return deviation

    def _group_sums(self, fn: Callable) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-(batch, group) sums and counts of ``fn(x, codes)`` over all registered cells,
        in eval mode: one exact pass, chunk by chunk."""
        self.module.eval()
        sums = counts = 0
        with torch.inference_mode():
            for x, codes in self._chunks(self._counts, self._codes, INFERENCE_BATCH):
                s, c = self.module.group_means(fn(x, codes), codes)
                sums, counts = sums + s, counts + c
        return sums, counts

    def _chunks(self, counts, codes: np.ndarray, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised expression and codes of consecutive chunks of cells, on the device."""
        for idx in sequential_chunks(codes.shape[0], batch_size):
            yield minibatch(counts, codes, idx, self.device)

    def _neutral(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Cells translated to the neutral batch code, keeping their other codes."""
        return self.module.generator(x, codes, self.module.neutral_codes(codes))

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("This GENEX model is not trained. Call model.train() first (or GENEX.load a trained one).")

    def _infer(self, adata: ad.AnnData | None, batch_size: int, width: int, fn: Callable) -> np.ndarray:
        """Apply ``fn(x, codes)`` chunk by chunk under inference mode, in eval mode."""
        self._check_trained()
        counts, codes = (self._counts, self._codes) if adata is None else encode(adata, self.registry)
        self.module.eval()
        out = np.empty((codes.shape[0], width), dtype=np.float32)
        start = 0
        with torch.inference_mode():
            for x, c in self._chunks(counts, codes, batch_size):
                out[start : start + len(x)] = fn(x, c).cpu().numpy()
                start += len(x)
        return out

    def get_corrected_expression(self, adata: ad.AnnData | None = None, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
        """Batch-corrected log1p(CP10k) expression, cells x genes (dense float32).

        Every cell translated to the neutral batch code; in label-conditioned mode with its own
        label (and covariate) codes. Write it to ``adata.layers``.

        Parameters
        ----------
        adata
            Data to correct (same genes, known levels); ``None``: the data the model was made with.
        batch_size
            Cells per forward pass (bounds memory).
        """
        return self._infer(adata, batch_size, self.module_args["n_genes"], self._neutral)

    def get_latent_representation(self, adata: ad.AnnData | None = None, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
        """The encoder's latent of each corrected cell, cells x ``latent``, with the neutral
        batch code (and own label and covariate codes in label-conditioned mode). Write it to
        ``adata.obsm``.

        The latent of the *uncorrected* cell keeps its batch (nothing in training asks the
        encoder to drop it; 15-NN batch accuracy 0.99 on the default benchmark data), while
        the corrected cell has lost it, so the embedding encodes the corrected cell.
        """
        encode, codes_of = self.module.generator.encode, self.module.neutral_codes
        return self._infer(adata, batch_size, self.module_args["latent"], lambda x, c: encode(self._neutral(x, c), codes_of(c)))

    def explain(
        self,
        covariate: str | None = None,
        per: Literal["cell_type"] | None = "cell_type",
        method: Literal["lfc", "translation", "ig_neutral", "ig_zero", "smoothgrad"] = "lfc",
        adata: ad.AnnData | None = None,
        n_steps: int = 20,
        batch_size: int = 128,
        alpha: float = 0.05,
        seed: int = 0,
        store: bool = False,
    ) -> pd.DataFrame:
        """Genes tied to each level of each covariate, ranked over the model's design (and, for
        the networks' attributions, by its networks), tested on the data. The statistic, the
        test and the measurements behind the defaults are in :mod:`genex_core.explain`.

        Parameters
        ----------
        covariate
            The batch key, the label key or a covariate key; ``None``: all of them.
        per
            ``"cell_type"``: also score each level within each cell type (not for the label
            itself); ``None``: overall only (the only choice in label-free mode).
        method
            What ranks the genes. ``"lfc"`` (default; best on ``benchmarks/explain_variants.py``:
            mean AUPRC against the simulated truth 0.865, translation 0.661, ig_neutral 0.685,
            smoothgrad 0.679, ig_zero 0.602): the stratified log fold change of mean CP10k
            between the level's cells and the rest, over the model's design but not its
            networks. The networks' attributions: ``"translation"``, ``x - G(x ->
            covariate-free code)``, the generator's own estimate of the covariate's shift;
            ``"ig_neutral"``: captum integrated gradients of the discriminator's classifier
            head (log-probability of the level) from that translation to the cell;
            ``"ig_zero"``: the same from zero (the published recipe); ``"smoothgrad"``: the
            head's SmoothGrad gradient times ``x - G(x -> covariate-free code)``.
        adata
            Data to explain (the model's genes and known levels), e.g. a subset of cells to
            bound the cost; ``None``: the training data.
        n_steps
            Integrated-gradient steps (``ig_*``). Published: 50; with captum's Gauss-Legendre
            steps the scores at 20 steps matched those at 50 (Spearman >= 0.998).
        batch_size
            Cells per chunk: memory is bounded by one chunk (times ``n_steps`` for IG), not
            by the number of cells. Runs on the model's device.
        alpha
            FDR level of ``significant``.
        seed
            Seeds SmoothGrad's noise (the other methods draw nothing): on the CPU the same
            call gives an identical table.
        store
            Also write into ``adata`` (the model's data if ``None``), replacing earlier
            results: ``varm["genex_<covariate>"]``, a DataFrame genes x levels of the
            overall scores; ``uns["genex_explain"]``, the table; ``uns["genex_explain_params"]``,
            the arguments.

        Returns
        -------
        pandas.DataFrame
            One row per (covariate, level, cell_type, gene): ``cell_type`` is ``"all"`` for
            overall scores; ``score`` (``|effect|``) and ``rank`` (1 = most tied to the level,
            within each covariate, level and cell type); ``effect``, the stratified difference
            of the method's values between the level's cells and the rest (a natural-log fold
            change for ``lfc``, a log1p-CP10k shift for ``translation``); ``data_effect``, the
            same difference of log1p CP10k on the observed expression; ``pval`` (two-sided, of
            ``data_effect`` against an empirical null), ``fdr`` (Benjamini-Hochberg) and
            ``significant`` (``fdr <= alpha``).

        Raises
        ------
        ValueError
            An unknown covariate, method or ``per``; ``per`` without labels; data without two
            levels to compare in any stratum.
        RuntimeError
            If the model is not trained.
        """
        from genex_core.explain import explain  # imports captum, only when explaining

        return explain(self, covariate, per, method, adata, n_steps, batch_size, alpha, seed, store)

    def save(self, dir_path: str | Path, overwrite: bool = False) -> None:
        """Write the weights (``model.pt``) and a JSON registry (set-up, category mappings,
        genes, architecture, training arguments, history, mode) to ``dir_path``.

        Each file is written to a hidden temporary file and renamed into place, so a killed
        save leaves no half-written model (a later save removes the temporaries a killed one
        left). The files' modification time is when this model's training started (or when it
        was made or loaded, untrained), and ``overwrite`` never replaces a model whose training
        started later: an orphaned job of a killed workflow run finishing after a newer run's
        job cannot replace the newer model.

        Raises
        ------
        FileExistsError
            If a saved model is already there and ``overwrite`` is False;
            ``genex_core._atomic.StaleOutputError`` (a FileExistsError) if the saved model was
            trained after this one started training.
        """
        path = Path(dir_path)
        files = [path / C.WEIGHTS_FILE, path / C.REGISTRY_FILE]
        if not overwrite and any(f.exists() for f in files):
            raise FileExistsError(
                f"a GENEX model is already saved in {path}. Pass overwrite=True to replace it, or choose another directory."
            )
        path.mkdir(parents=True, exist_ok=True)
        registry = {
            **self.info,
            C.CATEGORIES: self.registry.categories,
            C.VAR_NAMES: list(self.registry.var_names),
            C.HISTORY: self.history,
            C.IS_TRAINED: self.is_trained,
        }
        for file in files:  # both checked before either is replaced
            check_not_newer(file, self._started_ns)
        replace_atomically(lambda tmp: torch.save(self.module.state_dict(), tmp), files[0], self._started_ns)
        replace_atomically(lambda tmp: tmp.write_text(json.dumps(registry, indent=1)), files[1], self._started_ns)

    @classmethod
    def load(cls, dir_path: str | Path, adata: ad.AnnData, device: str | torch.device = "auto") -> "GENEX":
        """Load a saved model onto ``adata``, replaying its registration.

        Raises
        ------
        ValueError
            If ``adata`` has other genes, other keys or category levels the model never saw.
        """
        path = Path(dir_path)
        saved = json.loads((path / C.REGISTRY_FILE).read_text())
        registry = Registry.from_saved(saved[C.SETUP_ARGS], saved[C.VAR_NAMES], saved[C.CATEGORIES])
        model = cls.__new__(cls)
        model._setup(adata, registry, saved[C.MODULE_ARGS])
        model.device = _resolve_device(device)
        state = torch.load(path / C.WEIGHTS_FILE, map_location=model.device, weights_only=True)
        model.module.load_state_dict(state)
        model.module.to(model.device).eval()
        model.train_args, model.history, model.is_trained = saved[C.TRAIN_ARGS], saved[C.HISTORY], saved[C.IS_TRAINED]
        return model

    def summary(self) -> str:
        """One paragraph: mode, data, architecture, training state."""
        reg, args = self.registry, self.module_args
        levels = ", ".join(f"{k} ({n} levels)" for k, n in zip(reg.keys, reg.n_levels))
        text = (
            f"GENEX ({self.mode}) on {self.adata.n_obs} cells x {args['n_genes']} genes; codes: {levels}; "
            f"hidden {args['hidden']}, latent {args['latent']}; "
        )
        if not self.is_trained:
            return text + "not trained."
        t = self.train_args
        seconds = self.history["elapsed_s"][-1] if self.history.get("elapsed_s") else float("nan")
        return text + (
            f"trained {t['max_epochs']} epochs (batch {t['batch_size']}, lr {t['lr']}, seed {t['seed']}) "
            f"on {t['device']} in {seconds:.0f} s."
        )

    def __repr__(self) -> str:
        return self.summary()


_SHOWN = ("d_critic", "d_classification", "g_adversarial", "g_classification", "g_reconstruction", "neutral_deviation")


def _accumulate(sums: dict[str, torch.Tensor], prefix: str, loss) -> None:
    """Add a loss dataclass's named terms into ``sums`` without a device sync."""
    for name, value in vars(loss).items():
        sums[prefix + name] += value.detach()
