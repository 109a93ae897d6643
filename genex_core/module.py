"""GENEX networks and losses in plain torch: no AnnData, no file I/O.

Codes are a ``LongTensor`` of shape (cells, covariates): column 0 is the batch, then the label
(label-conditioned mode only), then the extra covariates, in that order. ``groups`` is a float
tensor (cells, n_groups) of soft group memberships (rows sum to 1): the one-hot label in
label-conditioned mode, soft clusters shared across batches in label-free mode
(:mod:`genex_core.groups`).

Two objectives share the networks:

``"neutral"`` (the default; see ``docs/method.md``)
    Corrected expression is the translation of a cell to the *neutral* batch code with its own
    group. It is ``ReLU(x' - O[b, g] * [x' > 0] + Delta(x, b, g))``:

    * ``x'`` is ``x`` with equalised zero rates: within each group shared by batches, a batch's
      smallest expressed values of a gene become zeros until its zero rate is the highest
      among them (thresholds set once, before training, from a sample of cells). A per-gene
      batch factor moves zero rates as well as means; no shift of expressed values undoes it.
    * ``O`` are closed-form per-(batch, group) offsets of the expressed values (not learned by
      SGD): set once per epoch from one exact pass over the neutral translations (the mean of
      every (batch, group)'s expressed values is moved to its group's batch average, shrunk
      toward the batch's own offset by empirical Bayes; a group found in one batch only takes
      its batch's offset). They apply to nonzero values only, so a zero stays zero...
    * ...unless the network residual ``Delta`` (zero at initialisation) learned to fill it:
      at inference a zero becomes ``Delta`` only where ``Delta > ZERO_FILL_MIN`` (0.1 in
      log1p CP10k, far below one count in 10,000), so the residual's small noise does not
      turn ties at zero into ranks. ``Delta`` sees the cell, its batch and its group; it is
      what can correct what a shift cannot (per-gene scale and zero-inflation, states
      within a group).
    * What defines "neutral": a batch critic (a head on the discriminator's trunk, one set of
      batch logits per group) sees the neutral translation and tries to tell its source batch
      within its group; the generator fools it (its target is the group's batch prior, what a
      critic that learned nothing predicts), while an L1 identity term keeps ``Delta`` small:
      the network moves a cell only where the critic can see its batch.
    * Extra covariates (sex, condition...) do not enter the neutral translation: they are
      explained, not corrected. Their translation multiplies a cell's CP10k by
      ``exp(E[g, target] - E[g, source])``: per-(group, level) log fold changes, fitted in
      closed form with the offsets (:meth:`GenexModule.update_covariate_effects`), so a
      translated group's mean matches the target level's within each batch; zeros stay zero.
      ``correct_covariates=True`` instead feeds their codes to the generator and adds them to
      what the critic must not tell apart.

``"stargan"`` (the published recipe, :data:`PUBLISHED`)
    Random batch and label targets; critic on real vs translated cells with the WGAN-div
    gradient penalty; classification of translated cells as their targets; cycle consistency;
    ``ReLU(x + G(x, c, g))`` with the neutral code a zero batch embedding. No offsets.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LEAK = 0.2
ZERO_FILL_MIN = 0.1  # log1p CP10k: a zero the residual fills less than this stays zero (inference)
MIN_SHARED_MASS = 2.0  # a group is shared when at least two batches hold this many of its cells
LFC_PSEUDOCOUNT = 0.05  # CP10k added to a mean before its log (covariate log fold changes)


@dataclass
class DiscriminatorLoss:
    """Named terms of one discriminator step (``total`` is what is minimised). Terms an
    objective does not use are zero."""

    total: torch.Tensor
    critic: torch.Tensor
    gradient_penalty: torch.Tensor
    classification: torch.Tensor


@dataclass
class GeneratorLoss:
    """Named terms of one generator step (``total`` is what is minimised)."""

    total: torch.Tensor
    adversarial: torch.Tensor
    classification: torch.Tensor
    reconstruction: torch.Tensor


def _block(n_in: int, n_out: int, dropout: float, norm: type[nn.Module]) -> nn.Sequential:
    """Linear -> norm -> Dropout -> LeakyReLU(0.2), the published building block."""
    return nn.Sequential(nn.Linear(n_in, n_out), norm(n_out), nn.Dropout(dropout), nn.LeakyReLU(LEAK))


def _mlp(n_in: int, widths: Sequence[int], n_out: int, dropout: float) -> nn.Sequential:
    """BatchNorm blocks through ``widths``, then a plain Linear to ``n_out``."""
    layers = []
    for width in widths:
        layers.append(_block(n_in, width, dropout, nn.BatchNorm1d))
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """Encoder-decoder predicting the residual that moves a cell to its target codes.

    The encoder sees ``concat(x, emb(target batch), groups @ W_group[, covariate embeddings])``
    (the published full model's input, with the label embedding generalised to soft groups);
    the decoder maps the latent back to a per-gene residual.

    Parameters
    ----------
    n_genes
        Genes (input and output width).
    n_levels
        Levels of each code column, batch first. The batch embedding gets one extra row, the
        neutral code.
    n_groups
        Width of ``groups`` (labels, or soft clusters in label-free mode).
    label_conditioned
        Column 1 of the codes is the label (then ``n_groups`` equals its levels).
    hidden, latent, embedding_dim, dropout
        Architecture (published: (1024, 512), 32, 16, 0.16).
    feed_covariates
        Feed the extra covariates' codes to the encoder (``correct_covariates`` and the
        published recipe). Otherwise the neutral translation cannot depend on them.
    offsets
        Closed-form per-(batch, group) offsets of expressed values (the ``"neutral"`` objective).
    keep_zeros
        Offsets and covariate shifts move expressed values only; a zero changes only where
        the residual fills it by more than ``ZERO_FILL_MIN`` (at inference).
    equalise_zeros
        Before the offsets, each cell's expressed values at or below its (batch, group)'s
        ``zero_thresholds`` become zeros (see :meth:`GenexModule.set_zero_thresholds`), and the
        offsets match the means of expressed values.
    zero_neutral
        The neutral code is a zero batch embedding (published) rather than a trained row.
    """

    def __init__(
        self,
        n_genes: int,
        n_levels: Sequence[int],
        n_groups: int,
        label_conditioned: bool,
        hidden: Sequence[int],
        latent: int,
        embedding_dim: int,
        dropout: float,
        feed_covariates: bool,
        offsets: bool,
        keep_zeros: bool,
        equalise_zeros: bool,
        zero_neutral: bool,
    ):
        super().__init__()
        self.n_levels = list(n_levels)
        self.n_batches = n_levels[0]
        self.n_groups = n_groups
        self.first_covariate = 2 if label_conditioned else 1
        self.feed_covariates, self.use_offsets, self.keep_zeros, self.zero_neutral = (
            feed_covariates,
            offsets,
            keep_zeros,
            zero_neutral,
        )
        self.batch_embedding = nn.Embedding(self.n_batches + 1, embedding_dim)
        self.group_embedding = nn.Linear(n_groups, embedding_dim, bias=False)
        covariates = self.n_levels[self.first_covariate :]
        self.covariate_embeddings = nn.ModuleList(nn.Embedding(n, embedding_dim) for n in covariates) if feed_covariates else None
        n_in = n_genes + embedding_dim * (2 + (len(covariates) if feed_covariates else 0))
        self.encoder = _mlp(n_in, hidden, latent, dropout)
        self.decoder = _mlp(latent, list(hidden)[::-1], n_genes, dropout)
        # Explained covariates: per-(group, level) log fold changes of CP10k (closed form).
        self.n_explained = 0 if feed_covariates else len(covariates)
        for i, n in enumerate(covariates[: self.n_explained]):
            self.register_buffer(f"covariate_lfc_{i}", torch.zeros(n_groups, n, n_genes))
        self.register_buffer("offsets", torch.zeros(self.n_batches, n_groups, n_genes))
        self.equalise_zeros = equalise_zeros
        self.register_buffer("zero_thresholds", torch.zeros(self.n_batches, n_groups, n_genes))

    @property
    def neutral_code(self) -> int:
        return self.n_batches

    def _inputs(self, x: torch.Tensor, codes: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        batch = self.batch_embedding(codes[:, 0])
        if self.zero_neutral:
            batch = batch.masked_fill((codes[:, 0] == self.neutral_code).unsqueeze(1), 0.0)
        parts = [x, batch, self.group_embedding(groups)]
        if self.feed_covariates:
            parts += [emb(codes[:, self.first_covariate + i]) for i, emb in enumerate(self.covariate_embeddings)]
        return torch.cat(parts, dim=1)

    def encode(self, x: torch.Tensor, codes: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """The latent of ``x`` given its (target) codes and groups."""
        return self.encoder(self._inputs(x, codes, groups))

    def residual(self, x: torch.Tensor, codes: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """The network's per-gene residual for target ``codes``."""
        return self.decoder(self.encode(x, codes, groups))

    def offset(self, batches: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Per-gene offset of each cell: its batch's offsets averaged over its soft groups."""
        return torch.einsum("ck,ckg->cg", groups, self.offsets[batches.clamp(max=self.n_batches - 1)])

    def thinned(self, x: torch.Tensor, batches: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """``x`` with the values at or below each cell's zero threshold (its batch's thresholds
        averaged over its soft groups) set to zero; ``x`` itself without ``equalise_zeros``."""
        if not self.equalise_zeros:
            return x
        threshold = torch.einsum("ck,ckg->cg", groups, self.zero_thresholds[batches.clamp(max=self.n_batches - 1)])
        return torch.where(x > threshold, x, 0.0)

    @property
    def covariate_lfcs(self) -> list[torch.Tensor]:
        """(groups, levels, genes) log fold changes of each explained covariate."""
        return [getattr(self, f"covariate_lfc_{i}") for i in range(self.n_explained)]

    def covariate_shift(self, source: torch.Tensor, target: torch.Tensor, groups: torch.Tensor) -> torch.Tensor | None:
        """Summed log fold changes of the explained covariates from the source to the target
        levels, per cell and gene (None if no explained covariate changes)."""
        shift = None
        for i, lfc in enumerate(self.covariate_lfcs):
            col = self.first_covariate + i
            if torch.equal(source[:, col], target[:, col]):
                continue
            per_cell = torch.einsum("ck,klg->clg", groups, lfc)  # cells, levels, genes
            rows = torch.arange(len(groups), device=groups.device)
            term = per_cell[rows, target[:, col]] - per_cell[rows, source[:, col]]
            shift = term if shift is None else shift + term
        return shift

    def forward(
        self,
        x: torch.Tensor,
        source: torch.Tensor,
        target: torch.Tensor,
        groups: torch.Tensor,
        with_residual: bool = False,
        unmasked: bool = False,
    ):
        """Translate ``x`` from its ``source`` codes to ``target`` codes.

        A target with the cell's own batch changes only its explained covariates (no network
        pass); the neutral batch is the correction; another real batch is the neutral
        translation plus that batch's offsets. With ``with_residual``, also return the
        network's residual (None where no network pass ran). ``unmasked``: the value before
        zeros are kept and before ReLU (``x' + shift + residual``, what the offsets calibrate;
        ``x'`` is :meth:`thinned` ``x``).
        """
        same_batch = (source[:, 0] == target[:, 0]).unsqueeze(1) & (self.use_offsets and not self.feed_covariates)
        if same_batch.all():
            out, delta = x, None
        else:
            if self.use_offsets:  # the residual is trained toward the neutral code only
                neutral_target = target.clone()
                neutral_target[:, 0] = self.neutral_code
                delta = self.residual(x, neutral_target, groups)
            else:
                delta = self.residual(x, target, groups)
            shift = torch.zeros_like(x)
            if self.use_offsets:
                neutral = (target[:, 0] == self.neutral_code).unsqueeze(1)
                shift = torch.where(neutral, 0.0, self.offset(target[:, 0], groups)) - self.offset(source[:, 0], groups)
            thin = self.thinned(x, source[:, 0], groups)
            if unmasked:
                return thin + shift + delta
            if self.keep_zeros:
                shift = shift * (thin > 0)
            out = F.relu(thin + shift + delta)
            if self.keep_zeros and not self.training:
                out = torch.where((thin > 0) | (out > ZERO_FILL_MIN), out, 0.0)
            out = torch.where(same_batch, x, out)  # whatever else the chunk holds
        cov = self.covariate_shift(source, target, groups)
        if cov is not None:  # multiplies CP10k: zeros stay zero
            out = torch.log1p(torch.expm1(out) * torch.exp(cov))
        return (out, delta) if with_residual else out


class Discriminator(nn.Module):
    """Trunk with a realness head, one classifier head per code column and a batch critic.

    LayerNorm where the published critic used BatchNorm: a cell's score then does not depend
    on the rest of its minibatch (well-defined per-cell gradient penalty; explanations
    independent of chunking). The batch critic gives one set of batch logits per group.
    """

    def __init__(
        self,
        n_genes: int,
        n_levels: Sequence[int],
        n_groups: int,
        hidden: Sequence[int],
        latent: int,
        dropout: float,
        n_classes: int,
    ):
        super().__init__()
        widths = [n_genes, *hidden, latent]
        self.trunk = nn.Sequential(*(_block(a, b, dropout, nn.LayerNorm) for a, b in zip(widths[:-1], widths[1:], strict=False)))
        self.realness = nn.Linear(latent, 1)
        self.classifiers = nn.ModuleList(nn.Linear(latent, n) for n in n_levels)
        self.n_groups, self.n_classes = n_groups, n_classes
        self.batch_critic = nn.Linear(latent, n_groups * n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Realness score per cell and the logits of every classifier head."""
        h = self.trunk(x)
        return self.realness(h).squeeze(1), [head(h) for head in self.classifiers]

    def critic_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(cells, groups, classes) logits of the batch critic from trunk features ``h``."""
        return self.batch_critic(h).view(-1, self.n_groups, self.n_classes)


class GenexModule(nn.Module):
    """Generator, discriminator and the two objectives' losses (see the module docstring).

    Parameters
    ----------
    n_genes, n_levels, n_groups, label_conditioned, hidden, latent, embedding_dim, dropout
        Architecture, see :class:`Generator`; the discriminator uses the same ``hidden``,
        ``latent`` and ``dropout``.
    objective
        ``"neutral"`` (default) or ``"stargan"`` (published).
    correct_covariates
        Extra covariates are removed by the correction (fed to the generator, and part of
        what the critic must not tell apart) rather than explained.
    keep_zeros, equalise_zeros
        See :class:`Generator` (``"neutral"`` default True; published False).
    """

    def __init__(
        self,
        n_genes: int,
        n_levels: Sequence[int],
        n_groups: int | None = None,
        label_conditioned: bool = True,
        hidden: Sequence[int] = (1024, 512),
        latent: int = 32,
        embedding_dim: int = 16,
        dropout: float = 0.16,
        objective: str = "neutral",
        correct_covariates: bool = False,
        keep_zeros: bool = True,
        equalise_zeros: bool = True,
        n_pcs: int = 0,
        n_reference: int = 0,
        fixed_groups: bool = False,
    ):
        super().__init__()
        if objective not in ("neutral", "stargan"):
            raise ValueError(f"objective must be 'neutral' or 'stargan', got {objective!r}.")
        self.n_levels = list(n_levels)
        self.objective = objective
        self.label_conditioned = label_conditioned
        self.correct_covariates = correct_covariates
        n_groups = n_levels[1] if label_conditioned else int(n_groups or 1)
        self.n_groups = n_groups
        stargan = objective == "stargan"
        self.generator = Generator(
            n_genes, n_levels, n_groups, label_conditioned, hidden, latent, embedding_dim, dropout,
            feed_covariates=correct_covariates or stargan, offsets=not stargan, keep_zeros=keep_zeros,
            equalise_zeros=equalise_zeros and not stargan, zero_neutral=stargan,
        )  # fmt: skip
        first_covariate = self.generator.first_covariate
        self.n_classes = n_levels[0]
        if correct_covariates:
            for n in n_levels[first_covariate:]:
                self.n_classes *= n
        self.discriminator = Discriminator(n_genes, n_levels, n_groups, hidden, latent, dropout, self.n_classes)
        # Label-free mode: how to find a new cell's soft groups (genex_core.groups).
        self.register_buffer("pca_mean", torch.zeros(n_genes if n_pcs else 0))
        self.register_buffer("pca_components", torch.zeros(n_genes if n_pcs else 0, n_pcs))
        self.register_buffer("reference_coords", torch.zeros(n_reference, n_pcs))
        self.register_buffer("reference_batches", torch.zeros(n_reference, dtype=torch.long))
        self.register_buffer("reference_groups", torch.zeros(n_reference, n_groups if n_reference else 0))
        self.register_buffer("batch_prior", torch.full((n_groups, self.n_classes), 1.0 / self.n_classes))
        self.lambda_adv = self.lambda_cls = 1.0
        self.lambda_rec = 10.0
        self.lambda_identity = 1.0
        self.gp_power, self.gp_weight = 6.0, 1.0

    @property
    def neutral_code(self) -> int:
        """Index of the neutral batch code (one past the last batch)."""
        return self.n_levels[0]

    def neutral_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes`` with the batch replaced by the neutral code."""
        out = codes.clone()
        out[:, 0] = self.neutral_code
        return out

    def reset_parameters(self) -> None:
        """Kaiming-normal (a = 0.2) Linear weights as published; norm layers at weight 1; the
        decoder's last layer, the covariate log fold changes and the offsets at zero, so G starts at
        exactly the identity. Draws from the global torch generator (the caller seeds it)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding, nn.BatchNorm1d, nn.LayerNorm)):
                m.reset_parameters()
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=LEAK)
        G = self.generator
        for tensor in (G.decoder[-1].weight, G.decoder[-1].bias, G.offsets, *G.covariate_lfcs):
            nn.init.zeros_(tensor)

    # Groups -----------------------------------------------------------------------------

    def groups(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Soft groups of each cell: its one-hot label, or (label-free) the groups of its
        nearest reference cell of the same batch in the stored PCA."""
        if self.label_conditioned:
            return F.one_hot(codes[:, 1], self.n_groups).float()
        if self.reference_coords.shape[0] == 0:
            return torch.ones(x.shape[0], 1, device=x.device)
        z = (x - self.pca_mean) @ self.pca_components
        out = torch.empty(x.shape[0], self.n_groups, device=x.device)
        for b in codes[:, 0].unique():
            rows = codes[:, 0] == b
            ref = (self.reference_batches == b).nonzero().squeeze(1)
            nearest = torch.cdist(z[rows], self.reference_coords[ref]).argmin(dim=1)
            out[rows] = self.reference_groups[ref[nearest]]
        return out

    def translate(self, x: torch.Tensor, codes: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor | None = None):
        """``x`` translated from ``codes`` to ``targets`` (groups found if not given)."""
        return self.generator(x, codes, targets, self.groups(x, codes) if groups is None else groups)

    def neutral(self, x: torch.Tensor, codes: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """The corrected expression: ``x`` translated to the neutral batch, own other codes."""
        return self.translate(x, codes, self.neutral_codes(codes), groups)

    # Closed-form offsets ------------------------------------------------------------------

    def expressed_moments(self, y: torch.Tensor, thin: torch.Tensor, codes: torch.Tensor, groups: torch.Tensor):
        """Per-(batch, group, gene) soft count, sum and sum of squares of ``y`` (to accumulate
        over chunks of cells). ``y`` is ``x' + Delta`` (:meth:`Generator.forward`, unmasked,
        before offsets) and ``thin`` is ``x'``, the :meth:`Generator.thinned` input. With
        ``equalise_zeros``, only the entries expressed in ``x'`` count (the offsets move only
        those, and the zero rates are already equal); otherwise all entries do (matching the
        means of expressed values without equal zero rates leaves batches apart)."""
        w = torch.zeros(y.shape[0], self.n_levels[0], self.n_groups, device=y.device)
        w[torch.arange(y.shape[0]), codes[:, 0]] = groups
        w = w.flatten(1)  # cells x (batch, group)
        if self.generator.equalise_zeros:
            expressed = (thin > 0).to(y.dtype)
            y = y * expressed
            n = w.T @ expressed
        else:
            n = w.sum(0).unsqueeze(1).expand(-1, y.shape[1])
        s, q = w.T @ y, w.T @ (y * y)
        cells = w.sum(0)
        shape = (self.n_levels[0], self.n_groups, -1)
        return n.view(shape), s.view(shape), q.view(shape), cells.view(shape[:2])

    def update_offsets(self, n: torch.Tensor, s: torch.Tensor, q: torch.Tensor, cells: torch.Tensor) -> float:
        """Set the offsets from :meth:`expressed_moments` of ``x + Delta`` (the neutral
        translation before offsets): each (batch, group)'s deviation from its group's average
        over the batches where the group is shared, shrunk per gene toward the batch's own
        offset by empirical Bayes (as ComBat shrinks its batch parameters; a group found in one
        batch only takes its batch's offset). The offsets are replaced, not incremented, so the
        shrinkage does not wear off over epochs; with ``Delta = 0`` they are exactly the
        closed-form within-label shift. Returns the mean |raw deviation| over shared
        (batch, group, gene) cells."""
        shared_bg = _shared(cells)
        has = n > 0.5
        mean = s / n.clamp(min=1e-6)
        var = ((q - s * mean) * has).sum((0, 1)) / (n * has).sum((0, 1)).clamp(min=1)  # pooled within-group, per gene
        valid = has & shared_bg.unsqueeze(2)
        anchor = (mean * valid).sum(0) / valid.sum(0).clamp(min=1)  # (group, gene)
        raw = (mean - anchor.unsqueeze(0)) * valid
        weight = n * valid
        batch_dev = (raw * weight).sum(1) / weight.sum(1).clamp(min=1e-6)  # (batch, gene)
        dev = raw - batch_dev.unsqueeze(1)
        noise = var / n.clamp(min=1)
        tau2 = (((dev**2 - noise) * valid).sum((0, 1)) / valid.sum((0, 1)).clamp(min=1)).clamp(min=0)
        shrink = torch.where(valid, tau2 / (tau2 + noise).clamp(min=1e-12), 0.0)
        self.generator.offsets.copy_(batch_dev.unsqueeze(1) + shrink * dev)
        return float((raw.abs().sum() / valid.sum().clamp(min=1)).item())

    def set_zero_thresholds(self, x: torch.Tensor, batches: torch.Tensor, groups: torch.Tensor) -> None:
        """Set :attr:`Generator.zero_thresholds` from a sample of cells (``x`` log1p CP10k, their
        batches and soft groups): within each group shared by at least two batches (as for
        the offsets), each batch's smallest expressed values of a gene become zeros until its
        zero rate reaches the highest rate among those batches. A strong per-gene batch factor
        moves a gene's zero rate as well as its mean, which no shift of expressed values undoes
        (measured in ``docs/genex_ablation.md``). Groups in one batch only are not thinned."""
        G = self.generator
        shape = (self.n_levels[0], self.n_groups, x.shape[1])
        mass, zero_rate = torch.zeros(shape[:2], device=x.device), torch.zeros(shape, device=x.device)
        for b in range(shape[0]):
            rows = batches == b
            w = groups[rows]
            mass[b] = w.sum(0)
            zero_rate[b] = (w.T @ (x[rows] == 0).to(x.dtype)) / mass[b].clamp(min=1e-12).unsqueeze(1)
        shared = _shared(mass)
        target = (zero_rate * shared.unsqueeze(2)).amax(0)  # (group, gene)
        thresholds = torch.zeros(shape, device=x.device)
        for b in range(shape[0]):
            rows = batches == b
            values, order = x[rows].sort(dim=0)
            for k in shared[b].nonzero().squeeze(1).tolist():
                w = groups[rows, k][order]  # cells x genes, in each gene's order
                below = w.cumsum(0) / w.sum(0).clamp(min=1e-12)  # share of the group at or below
                last = (below <= target[k] + 1e-6).sum(0) - 1  # the last value to become zero
                thresholds[b, k] = values.gather(0, last.clamp(min=0).unsqueeze(0)).squeeze(0) * (last >= 0)
        G.zero_thresholds.copy_(thresholds)

    def covariate_moments(self, x: torch.Tensor, codes: torch.Tensor, groups: torch.Tensor) -> list[tuple]:
        """Per explained covariate: soft cell counts (batch, group, level) and sums of CP10k
        (batch, group, level, gene), to accumulate over chunks of cells."""
        G, cp10k = self.generator, torch.expm1(x)
        rows = torch.arange(x.shape[0], device=x.device)
        out = []
        for i in range(G.n_explained):
            col = G.first_covariate + i
            shape = (self.n_levels[0], self.n_groups, self.n_levels[col])
            w = torch.zeros(x.shape[0], *shape, device=x.device)
            w[rows, codes[:, 0], :, codes[:, col]] = groups
            w = w.flatten(1)
            out.append((w.sum(0).view(shape), (w.T @ cp10k).view(*shape, -1)))
        return out

    def update_covariate_effects(self, moments: list[tuple]) -> None:
        """Set each explained covariate's log fold changes from :meth:`covariate_moments`:
        within each (batch, group) holding every level (``MIN_SHARED_MASS`` cells each), the
        log mean CP10k (plus ``LFC_PSEUDOCOUNT``) of each level minus its average over the
        levels, averaged over batches with weights ``1 / sum_level 1 / n`` (Cochran-Mantel-
        Haenszel's for two levels). A group without such a batch takes the effect estimated
        on all cells (label-free soft groups can split by a strong covariate, none then
        holding every level)."""
        for lfc, (n, s) in zip(self.generator.covariate_lfcs, moments, strict=True):
            per_group, usable = _stratified_lfc(n, s)
            pooled, _ = _stratified_lfc(n.sum(1, keepdim=True), s.sum(1, keepdim=True))
            lfc.copy_(torch.where(usable.view(-1, 1, 1), per_group, pooled))

    # Losses -----------------------------------------------------------------------------------

    def _classification(self, logits: list[torch.Tensor], codes: torch.Tensor, columns) -> torch.Tensor:
        """Summed cross-entropy of the classifier heads of ``columns``; cells with the neutral
        batch code do not count for the batch head."""
        loss = logits[0].sum() * 0.0
        for i in columns:
            if i == 0:
                batched = codes[:, 0] != self.neutral_code
                if batched.any():
                    loss = loss + F.cross_entropy(logits[0][batched], codes[batched, 0])
            else:
                loss = loss + F.cross_entropy(logits[i], codes[:, i])
        return loss

    def _critic_loss(self, h: torch.Tensor, classes: torch.Tensor, groups: torch.Tensor, fool: bool) -> torch.Tensor:
        """Batch critic's cross-entropy within each soft group: toward the source class, or
        (``fool``) toward the group's batch prior."""
        logp = torch.log_softmax(self.discriminator.critic_logits(h), dim=2)  # cells, groups, batches
        if fool:
            per_group = -(logp * self.batch_prior.unsqueeze(0)).sum(2)
        else:
            per_group = -logp.gather(2, classes.view(-1, 1, 1).expand(-1, self.n_groups, 1)).squeeze(2)
        return (per_group * groups).sum(1).mean()

    def set_prior(self, codes: torch.Tensor, groups: torch.Tensor) -> None:
        """The critic's prior within each group: what the batch-balanced sampler draws (each
        critic class's share of its batch's cells in the group), normalised per group."""
        classes = self.critic_targets(codes)
        batch_of_class = torch.arange(self.n_classes, device=codes.device)
        for n in reversed(self.n_levels[self.generator.first_covariate :] if self.correct_covariates else []):
            batch_of_class = batch_of_class // n
        mass = torch.zeros(self.n_classes, self.n_groups, device=codes.device).index_add_(0, classes, groups)
        batch_size = torch.bincount(codes[:, 0], minlength=self.n_levels[0]).float()
        prior = (mass / batch_size[batch_of_class].unsqueeze(1)).T
        self.batch_prior.copy_(prior / prior.sum(1, keepdim=True).clamp(min=1e-12))

    def critic_targets(self, codes: torch.Tensor) -> torch.Tensor:
        """What the critic must tell: the batch, or with ``correct_covariates`` the
        (batch, covariate levels) combination, as one code."""
        combined = codes[:, 0].clone()
        if self.correct_covariates:
            for col in range(self.generator.first_covariate, len(self.n_levels)):
                combined = combined * self.n_levels[col] + codes[:, col]
        return combined

    def neutral_discriminator_loss(self, x, codes, groups, adversarial: bool) -> DiscriminatorLoss:
        """Classify every code of real cells; the critic tells the source batch of neutral
        translations within their group."""
        columns = range(len(self.n_levels))
        if adversarial:
            with torch.no_grad():
                y = self.generator(x, codes, self.neutral_codes(codes), groups)
            h = self.discriminator.trunk(torch.cat([x, y]))
            h_real, h_fake = h[: len(x)], h[len(x) :]
            critic = self._critic_loss(h_fake, self.critic_targets(codes), groups, fool=False)
        else:
            h_real, critic = self.discriminator.trunk(x), torch.zeros((), device=x.device)
        logits = [head(h_real) for head in self.discriminator.classifiers]
        classification = self._classification(logits, codes, columns)
        total = critic + self.lambda_cls * classification
        return DiscriminatorLoss(total, critic.detach(), torch.zeros((), device=x.device), classification.detach())

    def neutral_generator_loss(self, x, codes, groups, adversarial: bool) -> GeneratorLoss:
        """Fool the batch critic (``adversarial``) and keep the network residual small (L1
        identity)."""
        y, delta = self.generator(x, codes, self.neutral_codes(codes), groups, with_residual=True)
        zero = torch.zeros((), device=x.device)
        identity = delta.abs().mean()
        fool = zero
        if adversarial:
            fool = self._critic_loss(self.discriminator.trunk(y), self.critic_targets(codes), groups, fool=True)
        total = self.lambda_adv * fool + self.lambda_identity * identity
        return GeneratorLoss(total, fool.detach(), zero, identity.detach())

    def sample_targets(self, codes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Published: every target code drawn uniformly per cell (may equal the source)."""
        n = codes.shape[0]
        return torch.stack([torch.randint(high, (n,), generator=generator) for high in self.n_levels], dim=1).to(codes.device)

    def stargan_discriminator_loss(self, x, codes, targets, groups, gp_scale: float = 1.0) -> DiscriminatorLoss:
        """Published critic (real vs translated), WGAN-div penalty and classification of real cells."""
        tgroups = F.one_hot(targets[:, 1], self.n_groups).float() if self.label_conditioned else groups
        with torch.no_grad():
            fake = self.generator(x, codes, targets, tgroups)
        with_penalty = gp_scale > 0
        real = x.detach().requires_grad_(with_penalty)
        fake.requires_grad_(with_penalty)
        real_score, real_logits = self.discriminator(real)
        fake_score, _ = self.discriminator(fake)
        critic = fake_score.mean() - real_score.mean()
        if with_penalty:
            grads = torch.autograd.grad(real_score.sum() + fake_score.sum(), (real, fake), create_graph=True)
            penalty = gp_scale * self.gp_weight * sum(g.norm(dim=1).pow(self.gp_power).mean() for g in grads)
        else:
            penalty = torch.zeros((), device=x.device)
        classification = self._classification(real_logits, codes, range(len(self.n_levels)))
        total = critic + penalty + self.lambda_cls * classification
        return DiscriminatorLoss(total, critic.detach(), penalty.detach(), classification.detach())

    def stargan_generator_loss(self, x, codes, targets, groups) -> GeneratorLoss:
        """Published: fool the critic, be classified as the targets, cycle back to the source."""
        tgroups = F.one_hot(targets[:, 1], self.n_groups).float() if self.label_conditioned else groups
        fake = self.generator(x, codes, targets, tgroups)
        score, logits = self.discriminator(fake)
        adversarial = -score.mean()
        classification = self._classification(logits, targets, range(len(self.n_levels)))
        reconstruction = F.smooth_l1_loss(self.generator(fake, targets, codes, groups), x)
        total = self.lambda_adv * adversarial + self.lambda_cls * classification + self.lambda_rec * reconstruction
        return GeneratorLoss(total, adversarial.detach(), classification.detach(), reconstruction.detach())


def _shared(mass: torch.Tensor) -> torch.Tensor:
    """(batch, group) pairs of a group shared by batches: at least two batches hold
    ``MIN_SHARED_MASS`` of its (soft) cells."""
    shared = mass >= MIN_SHARED_MASS
    return shared & (shared.sum(0) >= 2).unsqueeze(0)


def _stratified_lfc(n: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(group, level, gene) log fold changes of :meth:`GenexModule.update_covariate_effects`
    from counts ``n`` (batch, group, level) and CP10k sums ``s`` (batch, group, level, gene),
    and whether each group had a batch holding every level."""
    log_mean = torch.log(s / n.clamp(min=1e-6).unsqueeze(-1) + LFC_PSEUDOCOUNT)
    contrast = log_mean - log_mean.mean(2, keepdim=True)
    w = torch.where((n >= MIN_SHARED_MASS).all(2), 1.0 / (1.0 / n.clamp(min=1e-6)).sum(2), 0.0)  # batch, group
    total = w.sum(0)
    return torch.einsum("bg,bglk->glk", w, contrast) / total.clamp(min=1e-12).view(-1, 1, 1), total > 0
