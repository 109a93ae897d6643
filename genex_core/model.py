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
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from genex_core import _constants as C
from genex_core import groups as G
from genex_core._atomic import check_not_newer, replace_atomically
from genex_core.data import BalancedSampler, Registry, as_keys, encode, minibatch, register, sequential_chunks
from genex_core.module import DiscriminatorLoss, GeneratorLoss, GenexModule
from genex_core.preprocessing import log_normalize

logger = logging.getLogger(__name__)

# Training defaults, chosen by measurement on the default benchmark's 1,200-cell x 1,000-gene
# scenarios on one CPU thread (benchmarks/genex_ablation.py, docs/genex_ablation.md).
DEFAULT_HIDDEN = (256, 128)
CELL_PASSES = 60_000  # default epochs: this many cells drawn in all (50 epochs of 1,200 cells)
EPOCH_RANGE = (10, 100)
DEFAULT_BATCH_SIZE = 128
DEFAULT_LR = 1e-3
ADAM_BETAS = (0.5, 0.9)
CRITIC_LR_FACTOR = 3.0  # the critic learns 3x faster than G (two time-scale update rule)
LAMBDA_IDENTITY = 10.0
DEFAULT_N_CRITIC = 2
INFERENCE_BATCH = 1024
RECIPES = ("default", "published")

# The published recipe (GENEX_METHOD.md): architecture, objective and training.
PUBLISHED_MODULE = dict(hidden=[1024, 512], latent=32, embedding_dim=16, dropout=0.16, objective="stargan", keep_zeros=False)
PUBLISHED_TRAIN = dict(max_epochs=600, batch_size=2048, n_critic=3, gp_every=1, lr=1.0)
PUBLISHED_ADAM_LR = 1e-4  # when the DoG package (dog-optimizer) is not installed

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
    whatever the data size (50 epochs for 1,200 cells, 10 from 6,000 cells on)."""
    return int(min(max(round(CELL_PASSES / n_cells), EPOCH_RANGE[0]), EPOCH_RANGE[1]))


def _dog_optimizers():
    """DoG and its polynomial-decay averager from the ``dog-optimizer`` package, or None."""
    try:
        from dog import DoG, PolynomialDecayAverager
    except ImportError:
        return None
    return DoG, PolynomialDecayAverager


class GENEX:
    """GENEX batch correction: a translation of every cell to a *neutral* batch, in
    log1p(CP10k) expression.

    The correction is ``ReLU(x' - O[b, g] * [x' > 0] + Delta(x, b, g))``: ``x'`` is ``x`` with
    each gene's zero rate equalised across batches within a group (``equalise_zeros``), then
    closed-form per-(batch, group) offsets of expressed values, set exactly once per epoch, plus a network
    residual trained against a batch critic that sees the neutral translation and its group
    and tries to tell its source batch (see :mod:`genex_core.module` and ``docs/method.md``).
    Groups are the cell-type labels, or soft clusters shared across batches in label-free mode
    (:mod:`genex_core.groups`). ``train(recipe="published")`` runs the published StarGAN
    recipe instead.

    Parameters
    ----------
    adata
        Raw counts (non-negative integers) in ``X`` or in ``layers[layer]``, sparse or dense.
        Not copied; read minibatch by minibatch.
    batch_key
        ``obs`` column with the technical batch (at least 2 levels).
    label_key
        ``obs`` column with cell types: label-conditioned mode. ``None``: label-free mode.
    covariate_keys
        Further categorical ``obs`` columns (one may be given as a string). By default they are
        explained, not corrected: the correction cannot depend on them, and the discriminator
        learns a head for each (for :meth:`explain`).
    correct_covariates
        Remove the covariates too: their codes are fed to the generator and the critic must
        not tell them apart within a group. Refused for a covariate confounded with the batch
        (one level per batch), which cannot be told apart from it.
    layer
        Layer holding the counts; ``None`` for ``X``.
    hidden, latent, embedding_dim, dropout
        Encoder widths (mirrored by the decoder, also the critic's trunk), latent width,
        embedding width, dropout. Published: (1024, 512), 32, 16, 0.16.
    n_groups
        Label-free mode: number of soft groups (``None``: chosen by silhouette, at most 16,
        :func:`genex_core.groups.choose_n_groups`).
    keep_zeros
        Offsets and covariate shifts move expressed values only; a zero changes only where
        the network's residual fills it by more than ``module.ZERO_FILL_MIN``. False shifts
        zeros too, then ReLU (invents DE: see ``docs/method.md``).
    equalise_zeros
        Within each group, zero each batch's smallest expressed values of a gene until its zero
        rate matches the highest among the batches (a strong per-gene batch factor moves zero
        rates, which no shift of expressed values undoes); the offsets then match the means of
        expressed values. False: the offsets match the means of all entries.
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
        correct_covariates: bool = False,
        n_groups: int | None = None,
        keep_zeros: bool = True,
        equalise_zeros: bool = True,
    ):
        registry = register(adata, batch_key, label_key, as_keys(covariate_keys), layer)
        if correct_covariates:
            _check_not_confounded(adata, batch_key, registry.covariate_keys)
        label_free = label_key is None
        module_args = {
            "n_genes": adata.n_vars,
            "n_levels": registry.n_levels,
            "n_groups": (int(n_groups) if n_groups else G.MAX_GROUPS) if label_free else None,
            "fixed_groups": bool(n_groups),
            "label_conditioned": not label_free,
            "hidden": [int(h) for h in hidden],
            "latent": int(latent),
            "embedding_dim": int(embedding_dim),
            "dropout": float(dropout),
            "objective": "neutral",
            "correct_covariates": bool(correct_covariates),
            "keep_zeros": bool(keep_zeros),
            "equalise_zeros": bool(equalise_zeros),
            "n_pcs": min(G.N_PCS, adata.n_obs - 1, adata.n_vars) if label_free else 0,
            "n_reference": adata.n_obs if label_free else 0,
        }
        self._setup(adata, registry, module_args)

    def _setup(self, adata: ad.AnnData, registry: Registry, module_args: dict) -> None:
        """Encode ``adata`` with ``registry`` and build an untrained module (shared with load)."""
        self.adata = adata
        self.registry = registry
        self._counts, self._codes = encode(adata, registry)
        self._base_args = dict(module_args)
        self._build(module_args)
        self.device = torch.device("cpu")
        self.history: dict[str, list] = {}
        self.train_args: dict | None = None
        self.is_trained = False
        self.full_passes = 0.0  # reads of all training cells in the last train() (see _fit)
        self._started_ns = time.time_ns()  # made (or loaded); train() sets it again: see save()

    def _build(self, module_args: dict) -> None:
        self.module_args = module_args
        with torch.random.fork_rng(devices=[]):  # weights are drawn again, seeded, by train()
            self.module = GenexModule(**module_args)

    def configure(self, recipe: str = "default") -> None:
        """Rebuild the (untrained) networks for ``recipe``: ``"default"`` keeps the
        architecture given at construction; ``"published"`` uses the published widths and
        objective (:data:`PUBLISHED_MODULE`). :meth:`train` calls it."""
        if recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}.")
        args = dict(self._base_args)
        if recipe == "published":
            if not args["label_conditioned"]:
                raise ValueError("recipe='published' is the published label-conditioned model; give label_key.")
            args.update(PUBLISHED_MODULE)
        if args != self.module_args:
            self._build(args)

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
        batch_size: int | None = None,
        lr: float | None = None,
        n_critic: int | None = None,
        adversarial: bool = True,
        network: bool = True,
        lambda_identity: float = LAMBDA_IDENTITY,
        gp_every: int = 4,
        recipe: Literal["default", "published"] = "default",
        device: Literal["auto", "cpu", "cuda"] | str = "auto",
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        """Train from scratch; the result depends only on the data, the arguments and ``seed``.

        Parameters
        ----------
        max_epochs
            Epochs; each draws as many cells as the data holds, batch-balanced, and ends with
            one exact pass over all cells that updates the offsets (a run reads the data
            ``max_epochs + 1`` times; label-free on more than 4,096 cells also reads a
            4,096-cell subsample once, for the PCA). ``None``: :func:`default_epochs` (published: 600).
        batch_size
            Cells per minibatch (at least 2, for BatchNorm). Default 128 (published: 2048).
        lr
            Adam learning rate of the generator; the critic uses 3x (two time-scale rule).
            Default 1e-3 (published: DoG's 1.0).
        n_critic
            Critic steps per generator step. Default 2 (published: 3, as it effectively ran).
        adversarial
            Train the network residual against the batch critic; False: the residual only
            sees the identity term (ablation: "adversarial off").
        network
            Train the networks at all; False: offsets only (ablation).
        lambda_identity
            Weight of the L1 term on the network residual.
        gp_every
            Published recipe: the gradient penalty every this many critic steps, weighted
            by the same factor (published: 1).
        recipe
            ``"default"`` or ``"published"``: the published architecture, StarGAN objective,
            zero neutral code, batch 2048, 600 epochs, n_critic 3, gradient penalty every step,
            and DoG with polynomial weight averaging (gamma 8) when the ``dog-optimizer``
            package is installed (otherwise Adam, lr 1e-4, and a warning). Arguments given
            explicitly override the preset's.
        device
            ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed
            Seeds weights, sampling, groups and dropout, locally (global RNG state is
            restored). On the CPU two runs with the same seed and thread count are identical.
        progress
            Show one progress bar over epochs with the losses.
        """
        self.configure(recipe)
        published = recipe == "published"
        preset = (
            PUBLISHED_TRAIN
            if published
            else dict(batch_size=DEFAULT_BATCH_SIZE, lr=DEFAULT_LR, n_critic=DEFAULT_N_CRITIC, gp_every=gp_every)
        )
        batch_size = preset["batch_size"] if batch_size is None else batch_size
        lr = preset["lr"] if lr is None else lr
        n_critic = preset["n_critic"] if n_critic is None else n_critic
        gp_every = preset["gp_every"] if published else gp_every
        if max_epochs is None:
            max_epochs = PUBLISHED_TRAIN["max_epochs"] if published else default_epochs(self._codes.shape[0])
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (BatchNorm needs 2 cells), got {batch_size}.")
        if max_epochs < 1 or n_critic < 1 or gp_every < 1:
            raise ValueError("max_epochs, n_critic and gp_every must be positive.")
        device = _resolve_device(device)
        optimizer = "adam"
        if published:
            optimizer = "dog" if _dog_optimizers() else "adam"
            if optimizer == "adam":
                logger.warning(
                    "GENEX: the published recipe's DoG optimizer (package dog-optimizer) is not installed; using Adam, lr %g.",
                    PUBLISHED_ADAM_LR,
                )
                lr = PUBLISHED_ADAM_LR if lr == PUBLISHED_TRAIN["lr"] else lr
        self.train_args = {
            "recipe": recipe, "max_epochs": max_epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
            "betas": list(ADAM_BETAS), "n_critic": n_critic, "adversarial": bool(adversarial), "network": bool(network),
            "lambda_identity": float(lambda_identity), "gp_every": gp_every, "device": str(device),
            "seed": seed, "torch_threads": torch.get_num_threads(),
        }  # fmt: skip
        self.is_trained = False
        self._started_ns = time.time_ns()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.module.reset_parameters()
            self.module.lambda_identity = float(lambda_identity)
            self.module.to(device).train()
            self.device = device
            generator = torch.Generator().manual_seed(seed)
            fit = self._fit_stargan if published else self._fit
            self.history = fit(device, generator, progress)
        self.module.eval()
        self.is_trained = True

    # Training -------------------------------------------------------------------------------

    def _fit(self, device: torch.device, generator: torch.Generator, progress: bool) -> dict[str, list]:
        """The default training loop; returns the per-epoch history."""
        args, module = self.train_args, self.module
        self.full_passes = 0.0
        self._init_groups_and_offsets()
        Gn, D = module.generator, module.discriminator
        opt_g = torch.optim.Adam(Gn.parameters(), lr=args["lr"], betas=ADAM_BETAS)
        opt_d = torch.optim.Adam(D.parameters(), lr=CRITIC_LR_FACTOR * args["lr"], betas=ADAM_BETAS)
        sampler = BalancedSampler(self._codes[:, 0], args["batch_size"], generator)
        losses = (("d", DiscriminatorLoss), ("g", GeneratorLoss))
        history: dict[str, list] = {f"{prefix}_{f.name}": [] for prefix, cls in losses for f in fields(cls)}
        history["offset_update"], history["elapsed_s"] = [], []
        adversarial = args["adversarial"]
        step, start = 0, time.perf_counter()
        bar = tqdm(range(args["max_epochs"]), desc="GENEX", unit="epoch", disable=not progress)
        for epoch in bar:
            module.train()
            sums = {key: torch.zeros((), device=device) for key in history if key[:2] in ("d_", "g_")}
            n_d = n_g = 0
            for idx in sampler if args["network"] else ():
                x, codes = minibatch(self._counts, self._codes, idx, device)
                groups = self._train_groups(idx, codes)
                d_loss = module.neutral_discriminator_loss(x, codes, groups, adversarial)
                _step(opt_d, d_loss)
                _accumulate(sums, "d_", d_loss)
                step, n_d = step + 1, n_d + 1
                if step % args["n_critic"] == 0:
                    D.requires_grad_(False)  # G's step needs gradients through D, not of D
                    g_loss = module.neutral_generator_loss(x, codes, groups, adversarial)
                    _step(opt_g, g_loss)
                    D.requires_grad_(True)
                    _accumulate(sums, "g_", g_loss)
                    n_g += 1
            for key, total in sums.items():  # an epoch without a step records None
                n = n_d if key.startswith("d_") else n_g
                history[key].append(total.item() / n if n else None)
            history["offset_update"].append(self._update_offsets(covariates=epoch == args["max_epochs"] - 1))
            history["elapsed_s"].append(time.perf_counter() - start)
            bar.set_postfix({k: f"{v[-1]:.3g}" for k, v in history.items() if k in _SHOWN and v[-1] is not None})
        return history

    def _train_groups(self, idx: np.ndarray | None, codes: torch.Tensor) -> torch.Tensor:
        """Soft groups of training cells ``idx`` (label-free: the stored ones)."""
        if self.module.label_conditioned or idx is None:
            return self.module.groups(None, codes)
        return self.module.reference_groups[torch.from_numpy(idx).to(self.module.reference_groups.device)]

    def _training_chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Normalised expression, codes and groups of all training cells, chunk by chunk: one
        full-data pass (counted in ``full_passes``)."""
        for idx in sequential_chunks(self._codes.shape[0], INFERENCE_BATCH):
            x, codes = minibatch(self._counts, self._codes, idx, self.device)
            yield x, codes, self._train_groups(idx, codes)
        self.full_passes += 1

    def _update_offsets(self, covariates: bool = False) -> float:
        """One exact pass over the neutral translations and one offset update; returns the
        remaining mean |deviation| it corrected. ``covariates``: the same pass also fits the
        explained covariates' log fold changes (they do not depend on the networks). Training
        mode after."""
        module = self.module
        module.eval()
        acc, cov_acc = None, None
        with torch.inference_mode():
            for x, codes, groups in self._training_chunks():
                y = module.generator(x, codes, module.neutral_codes(codes), groups, unmasked=True)
                y = y + module.generator.offset(codes[:, 0], groups)  # x' + Delta: before the offsets
                moments = module.expressed_moments(y, module.generator.thinned(x, codes[:, 0], groups), codes, groups)
                acc = moments if acc is None else tuple(a + m for a, m in zip(acc, moments, strict=False))
                if covariates:
                    cov = module.covariate_moments(x, codes, groups)
                    cov_acc = (
                        cov if cov_acc is None else [(n + dn, s + ds) for (n, s), (dn, ds) in zip(cov_acc, cov, strict=True)]
                    )
            deviation = module.update_offsets(*acc)
            if cov_acc:
                module.update_covariate_effects(cov_acc)
        module.train()
        return deviation

    def _init_groups_and_offsets(self) -> None:
        """Before the first epoch, read a sample of at most ``PCA_CELLS`` cells (every cell of
        a smaller dataset). Label-free: the PCA fitted on it, the coordinates of every cell (one
        more full-data pass above the sample size), the soft groups shared across batches
        (:mod:`genex_core.groups`) and offsets from the per-(batch, group) means in PCA space.
        Then, from the sample: the zero thresholds and (with labels) the offsets of the
        identity translation. The offsets are refined in gene space after every epoch."""
        module = self.module
        n, seed = self._codes.shape[0], self.train_args["seed"]
        rng = np.random.default_rng(seed)
        sub = np.sort(rng.choice(n, G.PCA_CELLS, replace=False)) if n > G.PCA_CELLS else np.arange(n)
        x_sub = _dense_lognorm(self._counts, sub)
        self.full_passes += len(sub) / n
        codes_all = torch.from_numpy(self._codes).to(self.device)
        if not module.label_conditioned:
            self._init_groups(x_sub, sub, seed)
        module.set_prior(codes_all, module.groups(None, codes_all) if module.label_conditioned else module.reference_groups)
        x, codes = torch.from_numpy(x_sub).to(self.device), codes_all[torch.from_numpy(sub).to(self.device)]
        groups = self._train_groups(sub, codes)
        with torch.inference_mode():
            module.set_zero_thresholds(x, codes[:, 0], groups)
            if module.label_conditioned:
                thin = module.generator.thinned(x, codes[:, 0], groups)
                module.update_offsets(*module.expressed_moments(thin, thin, codes, groups))

    def _init_groups(self, x_sub: np.ndarray, sub: np.ndarray, seed: int) -> None:
        """Label-free: PCA, soft groups and PCA-space offsets (see :meth:`_init_groups_and_offsets`)."""
        module = self.module
        n, n_pcs = self._codes.shape[0], self.module_args["n_pcs"]
        mean, components = G.fit_pca(x_sub, n_pcs, seed)
        if n > G.PCA_CELLS:
            coords = np.concatenate([(x.cpu().numpy() - mean) @ components for x, _, _ in _plain_chunks(self)])
        else:
            coords = (x_sub - mean) @ components
        batches = self._codes[:, 0]
        groups = G.fit_groups(coords, batches, module.n_groups if self.module_args.get("fixed_groups") else None, seed)
        with torch.no_grad():
            for name, value in (
                ("pca_mean", mean),
                ("pca_components", components),
                ("reference_coords", coords),
                ("reference_groups", groups),
            ):
                getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
            module.reference_batches.copy_(torch.from_numpy(batches))
            groups_t = module.reference_groups
            # offsets from PCA-space means, mapped back to genes (low rank; refined per epoch)
            codes_all = torch.from_numpy(self._codes).to(self.device)
            z = torch.from_numpy(coords.astype(np.float32)).to(self.device)
            ones = torch.ones_like(z)
            w = torch.zeros(n, module.n_levels[0], module.n_groups, device=self.device)
            w[torch.arange(n), codes_all[:, 0]] = groups_t
            w = w.flatten(1)
            shape = (module.n_levels[0], module.n_groups, -1)
            moments = ((w.T @ ones).view(shape), (w.T @ z).view(shape), (w.T @ (z * z)).view(shape), w.sum(0).view(shape[:2]))
            saved = module.generator.offsets
            module.generator.offsets = torch.zeros(*shape[:2], z.shape[1], device=self.device)
            module.update_offsets(*moments)
            low_rank = module.generator.offsets @ module.pca_components.T
            module.generator.offsets = saved.copy_(low_rank)

    def _fit_stargan(self, device: torch.device, generator: torch.Generator, progress: bool) -> dict[str, list]:
        """The published training loop (StarGAN objective, random targets, zero neutral code)."""
        args, module = self.train_args, self.module
        self.full_passes = 0.0
        Gn, D = module.generator, module.discriminator
        dog = _dog_optimizers() if args["optimizer"] == "dog" else None
        if dog:
            DoG, Averager = dog
            opt_g = DoG(Gn.parameters(), lr=args["lr"], reps_rel=1e-4, eps=1e-16)
            # DoG needs a gradient for every parameter: not the batch critic, unused by this objective
            used = [p for name, p in D.named_parameters() if not name.startswith("batch_critic")]
            opt_d = DoG(used, lr=args["lr"], reps_rel=1e-4, eps=1e-16)
            averager = Averager(Gn, gamma=8)
        else:
            opt_g = torch.optim.Adam(Gn.parameters(), lr=args["lr"], betas=ADAM_BETAS)
            opt_d = torch.optim.Adam(D.parameters(), lr=args["lr"], betas=ADAM_BETAS)
            averager = None
        sampler = BalancedSampler(self._codes[:, 0], args["batch_size"], generator)
        losses = (("d", DiscriminatorLoss), ("g", GeneratorLoss))
        history: dict[str, list] = {f"{prefix}_{f.name}": [] for prefix, cls in losses for f in fields(cls)}
        history["elapsed_s"] = []
        step, start = 0, time.perf_counter()
        for _ in tqdm(range(args["max_epochs"]), desc="GENEX (published)", unit="epoch", disable=not progress):
            module.train()
            sums = {key: torch.zeros((), device=device) for key in history if key[:2] in ("d_", "g_")}
            n_d = n_g = 0
            for idx in sampler:
                x, codes = minibatch(self._counts, self._codes, idx, device)
                groups = self._train_groups(idx, codes)
                targets = module.sample_targets(codes, generator)
                gp_scale = args["gp_every"] if step % args["gp_every"] == 0 else 0
                d_loss = module.stargan_discriminator_loss(x, codes, targets, groups, gp_scale)
                _step(opt_d, d_loss)
                _accumulate(sums, "d_", d_loss)
                step, n_d = step + 1, n_d + 1
                if step % args["n_critic"] == 0:
                    D.requires_grad_(False)
                    g_loss = module.stargan_generator_loss(x, codes, targets, groups)
                    _step(opt_g, g_loss)
                    if averager is not None:
                        averager.step()
                    D.requires_grad_(True)
                    _accumulate(sums, "g_", g_loss)
                    n_g += 1
            for key, total in sums.items():
                n = n_d if key.startswith("d_") else n_g
                history[key].append(total.item() / n if n else None)
            history["elapsed_s"].append(time.perf_counter() - start)
        if averager is not None:  # the averaged G is used at inference, as published
            Gn.load_state_dict(averager.averaged_model.state_dict())
        return history

    # Inference ------------------------------------------------------------------------------

    def _chunks(self, counts, codes: np.ndarray, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised expression and codes of consecutive chunks of cells, on the device."""
        for idx in sequential_chunks(codes.shape[0], batch_size):
            yield minibatch(counts, codes, idx, self.device)

    def _neutral(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Cells translated to the neutral batch code, keeping their other codes."""
        return self.module.neutral(x, codes)

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("This GENEX model is not trained. Call model.train() first (or GENEX.load a trained one).")

    def _infer_chunks(self, adata: ad.AnnData | None, batch_size: int, fn: Callable) -> Iterator[tuple[int, np.ndarray]]:
        """``(first cell, fn(x, codes))`` of consecutive chunks, under inference mode, in eval
        mode: memory is bounded by one chunk (the counts of a backed AnnData stay on disk)."""
        self._check_trained()
        counts, codes = (self._counts, self._codes) if adata is None else encode(adata, self.registry)
        self.module.eval()
        start = 0
        with torch.inference_mode():
            for x, c in self._chunks(counts, codes, batch_size):
                yield start, fn(x, c).cpu().numpy()
                start += len(x)

    def _n_cells(self, adata: ad.AnnData | None) -> int:
        return self._codes.shape[0] if adata is None else adata.n_obs

    def _infer(self, adata: ad.AnnData | None, batch_size: int, width: int, fn: Callable, out=None, dtype=np.float32):
        """Apply ``fn(x, codes)`` chunk by chunk into ``out`` (a new array of ``dtype`` if None)."""
        shape = (self._n_cells(adata), width)
        if out is None:
            out = np.empty(shape, dtype=dtype)
        elif tuple(out.shape) != shape:
            raise ValueError(f"out has shape {tuple(out.shape)}; it must be cells x {width} = {shape}.")
        for start, values in self._infer_chunks(adata, batch_size, fn):
            out[start : start + len(values)] = values.astype(out.dtype, copy=False)
        return out

    def get_corrected_expression(
        self, adata: ad.AnnData | None = None, batch_size: int = INFERENCE_BATCH, out=None, dtype=np.float32
    ) -> np.ndarray:
        """Batch-corrected log1p(CP10k) expression, cells x genes (dense float32).

        Every cell translated to the neutral batch code with its own group (label, or soft
        groups of its nearest training cell of the same batch in label-free mode); explained
        covariates are left as they are. Write it to ``adata.layers``, or, for data too large
        for one dense matrix in memory, stream it to disk with :meth:`write_corrected` (or
        give ``out``).

        Parameters
        ----------
        adata
            Data to correct (same genes, known levels; in memory or backed); ``None``: the data
            the model was made with.
        batch_size
            Cells per forward pass (bounds memory).
        out
            An array-like of shape cells x genes to fill chunk by chunk and return instead of
            a new array: a ``numpy.memmap``, an ``h5py`` dataset, a ``zarr`` array... (values
            are cast to its dtype).
        dtype
            Of the new array when ``out`` is None, e.g. ``numpy.float16`` (half the memory;
            about 3 significant digits, ample for log1p CP10k values below ~11).
        """
        return self._infer(adata, batch_size, self.module_args["n_genes"], self._neutral, out, dtype)

    def write_corrected(
        self,
        path: str | Path,
        adata: ad.AnnData | None = None,
        layer: str = "corrected",
        dtype=np.float32,
        batch_size: int = INFERENCE_BATCH,
        overwrite: bool = False,
    ) -> Path:
        """Stream the corrected expression to a new file, chunk by chunk: the full dense matrix
        never exists in memory (memory is bounded by ``batch_size`` cells).

        ``path`` ending in ``.zarr``: a zarr array (cells x genes, chunks of ``batch_size``
        cells), ``zarr.open_array(path)``. Otherwise an ``.h5ad`` file holding the cells'
        ``obs`` and the genes' ``var`` with the values in ``layers[layer]`` (X empty),
        readable by ``anndata.read_h5ad`` and, without loading it, by ``h5py``
        (``f["layers"][layer][i:j]``). The file is written under a temporary name and renamed
        into place (``genex_core._atomic``), so a killed write leaves no partial output.

        Parameters
        ----------
        adata
            As :meth:`get_corrected_expression` (``None``: the training data).
        dtype
            ``numpy.float32`` (default) or ``numpy.float16`` (half the disk).

        Returns the path written. Raises FileExistsError if it exists and ``overwrite`` is False.
        """
        path = Path(path)
        dtype = np.dtype(dtype)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it, or choose another path.")
        shape = (self._n_cells(adata), self.module_args["n_genes"])
        chunks = (max(1, min(batch_size, shape[0])), shape[1])
        self._check_trained()
        if path.suffix == ".zarr":
            import shutil

            import zarr

            tmp = path.with_name(f".{path.name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                array = zarr.create_array(store=str(tmp), shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
                self.get_corrected_expression(adata, batch_size, out=array)
                if path.exists():
                    shutil.rmtree(path)
                tmp.rename(path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return path
        source = self.adata if adata is None else adata
        skeleton = ad.AnnData(obs=source.obs.copy(), var=source.var.copy())

        def write(tmp: Path) -> None:
            import h5py

            skeleton.write_h5ad(tmp)
            with h5py.File(tmp, "a") as f:
                layers = f.require_group("layers")
                data = layers.create_dataset(layer, shape=shape, dtype=dtype, chunks=chunks)
                data.attrs["encoding-type"], data.attrs["encoding-version"] = "array", "0.2.0"
                self.get_corrected_expression(adata, batch_size, out=data)

        return replace_atomically(write, path, time.time_ns())

    def get_latent_representation(self, adata: ad.AnnData | None = None, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
        """The encoder's latent of each corrected cell, cells x ``latent``, with the neutral
        batch code and its own groups. Write it to ``adata.obsm``."""
        module = self.module

        def latent(x, c):
            groups = module.groups(x, c)
            return module.generator.encode(module.neutral(x, c, groups), module.neutral_codes(c), groups)

        return self._infer(adata, batch_size, self.module_args["latent"], latent)

    def explain(
        self,
        covariate: str | None = None,
        per: Literal["cell_type"] | None = "cell_type",
        method: Literal["counterfactual", "ig_neutral", "ig_zero", "smoothgrad"] = "counterfactual",
        adata: ad.AnnData | None = None,
        n_steps: int = 20,
        batch_size: int = 128,
        alpha: float = 0.05,
        seed: int = 0,
        store: bool = False,
    ) -> pd.DataFrame:
        """Genes tied to each level of each covariate, ranked by the trained model and tested
        on the data (the statistics are in :mod:`genex_core.explain`, the measurements in
        ``docs/method.md``).

        Parameters
        ----------
        covariate
            The batch key or a covariate key (with ``method="counterfactual"``; the label key
            with the attribution methods); ``None``: all of them.
        per
            ``"cell_type"``: also score each level within each cell type; ``None``: overall
            only (the only choice in label-free mode: soft groups can split by a strong
            covariate rather than by cell type, leaving nothing to contrast within them).
        method
            ``"counterfactual"`` (default): every cell translated by the generator to the
            level and to the other levels (only that code changes); the log ratio of the
            translations' mean CP10k. ``"ig_neutral"``, ``"ig_zero"`` (published),
            ``"smoothgrad"``: attributions of the discriminator's classifier head.
        adata
            Data to explain (the model's genes and known levels), e.g. a subset of cells to
            bound the cost; ``None``: the training data.
        n_steps
            Integrated-gradient steps (``ig_*``; published: 50).
        batch_size
            Cells per chunk: memory is bounded by one chunk, not by the number of cells.
        alpha
            FDR level of ``significant``.
        seed
            Seeds SmoothGrad's noise (the other methods draw nothing): the same call gives
            an identical table.
        store
            Also write into ``adata`` (the model's data if ``None``), replacing earlier
            results: ``varm["genex_<covariate>"]``, genes x levels of the overall scores;
            ``uns["genex_explain"]``, the table; ``uns["genex_explain_params"]``, the arguments.

        Returns
        -------
        pandas.DataFrame
            One row per (covariate, level, cell_type, gene), ``cell_type`` ``"all"`` for
            overall rows: ``effect`` (the method's: a natural-log fold change for
            ``counterfactual``), ``score`` (``|effect|``; overall rows of a label-conditioned
            model: the root mean square of the per-type effects) and ``rank`` (1 = most
            tied); ``data_effect``, the stratified difference of mean log1p CP10k of the
            observed cells, with its ``pval`` (empirical null), ``fdr`` (Benjamini-Hochberg)
            and ``significant`` (``fdr <= alpha``).

        Raises
        ------
        ValueError
            An unknown covariate, method or ``per``; the label with ``counterfactual``;
            ``per`` without labels; data without two levels to compare in any stratum.
        RuntimeError
            If the model is not trained.
        """
        from genex_core.explain import Networks, columns_to_explain, explain  # imports captum, only when explaining

        columns = columns_to_explain(self.registry, covariate, per, method, n_steps, batch_size)
        self._check_trained()
        counts, codes = (self._counts, self._codes) if adata is None else encode(adata, self.registry)
        networks = Networks(self.module, self.registry, self.device)
        store_in = self.adata if adata is None else adata
        return explain(networks, counts, codes, columns, per, method, store_in, n_steps, batch_size, alpha, seed, store)

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
        levels = ", ".join(f"{k} ({n} levels)" for k, n in zip(reg.keys, reg.n_levels, strict=False))
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


_SHOWN = ("d_critic", "d_classification", "g_adversarial", "g_classification", "g_reconstruction", "offset_update")


def _step(optimizer: torch.optim.Optimizer, loss) -> None:
    """One optimiser step on ``loss.total``."""
    optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    optimizer.step()


def _accumulate(sums: dict[str, torch.Tensor], prefix: str, loss) -> None:
    """Add a loss dataclass's named terms into ``sums`` without a device sync."""
    for name, value in vars(loss).items():
        sums[prefix + name] += value.detach()


def _dense_lognorm(counts, idx: np.ndarray) -> np.ndarray:
    rows = counts[idx]
    return np.asarray(log_normalize(rows.toarray() if sp.issparse(rows) else rows), dtype=np.float32)


def _plain_chunks(model: "GENEX") -> Iterator[tuple[torch.Tensor, torch.Tensor, None]]:
    """All training cells chunk by chunk without groups (counted as one full-data pass)."""
    for idx in sequential_chunks(model._codes.shape[0], INFERENCE_BATCH):
        x, codes = minibatch(model._counts, model._codes, idx, model.device)
        yield x, codes, None
    model.full_passes += 1


def _check_not_confounded(adata: ad.AnnData, batch_key: str, keys: Sequence[str]) -> None:
    """A covariate to correct must vary within some batch, or it is the batch under another name."""
    for key in keys:
        levels_per_batch = adata.obs.groupby(adata.obs[batch_key].astype(str), observed=True)[key].nunique()
        if (levels_per_batch <= 1).all():
            raise ValueError(
                f"correct_covariates: adata.obs['{key}'] is confounded with the batch ({batch_key}): every batch holds one "
                f"level, so removing it cannot be told apart from removing the batch. Drop '{key}' from covariate_keys "
                "or keep it explained (correct_covariates=False)."
            )
