"""GENEX networks and losses in plain torch: no AnnData, no file I/O.

GENEX is a StarGAN-style conditional translation GAN over log1p(CP10k) expression. The
generator ``G`` moves a cell from its source codes to target codes (batch, label, covariates)
with a residual output; the discriminator ``D`` scores realness and classifies every
conditioning covariate. Corrected expression is the translation to the *neutral* batch code.

Codes are a ``LongTensor`` of shape (cells, covariates): column 0 is the batch, then the label
(label-conditioned mode only), then the extra covariates, in that order.

The neutral code
----------------
The published model corrects by replacing the batch embedding's output with a zero vector, a
code it never saw in training, so nothing constrains what it produces there. Here:

* the batch embedding has one extra row, the neutral code (index ``n_batches``), drawn as a
  translation target with probability ``neutral_prob``; a neutral target keeps the cell's own
  label and covariate codes, exactly as at inference;
* neutral translations must look real to the critic, keep their label and covariate classes,
  and cycle back to the cell (the published terms), and
* they are tied to a definition: within each label group (all cells in label-free mode), the
  mean neutral translation of every batch equals the batch-averaged mean of the real cells
  (``anchor``). A moment-matching term pushes each neutral translation along its group's
  current deviation from the anchor, which is the gradient of half the squared gap between
  the group means; the model measures the deviations exactly over all cells every few
  generator steps (:meth:`GenexModule.set_deviation`), because minibatch estimates are too
  noisy to remove the last tenth of a batch effect, and a measurement many steps old makes
  the term overshoot.

The generator's residual also carries a learned per-gene offset per (batch, label) group
(zero for the neutral code), ``O[target] - O[source]``: the mean shift between groups is then
a lookup rather than something the networks must rebuild for every cell, and the moment
term reaches it directly. This needs the source codes, which are always known (they are the
cell's own ``obs`` values); the networks add the cell-specific rest.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LEAK = 0.2


@dataclass
class DiscriminatorLoss:
    """Named terms of one discriminator step (``total`` is what is minimised).

    ``gradient_penalty`` is the penalty's weighted contribution to ``total`` (zero on steps
    that skip it), so its mean over steps estimates the same quantity whatever ``gp_scale``.
    """

    total: torch.Tensor
    critic: torch.Tensor
    gradient_penalty: torch.Tensor
    classification: torch.Tensor


@dataclass
class GeneratorLoss:
    """Named terms of one generator step (``total`` is what is minimised).

    ``moment`` is a linear surrogate whose gradient equals that of half the squared gap
    between group means; its value is not the gap (the model records that per epoch).
    """

    total: torch.Tensor
    adversarial: torch.Tensor
    classification: torch.Tensor
    reconstruction: torch.Tensor
    moment: torch.Tensor


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
    """Encoder-decoder predicting the change that moves a cell from source to target codes.

    Parameters
    ----------
    n_genes
        Genes (input and output width).
    n_levels
        Levels of each conditioning covariate, batch first. The batch embedding gets one
        extra row, the neutral code.
    hidden
        Encoder widths (the decoder mirrors them); published: (1024, 512).
    latent
        Width of the encoder's output, the embedding; published: 32.
    embedding_dim
        Width of each covariate embedding; published: 16.
    dropout
        Dropout in every block; published: 0.16.
    label_conditioned
        True: column 1 of the codes is the label; the encoder sees ``concat(x, codes)``
        (published GENEX) and offsets are per (batch, label). False: the encoder sees ``x``
        alone and the codes enter the decoder (published "GENEX (Batch)"), so the latent does
        not depend on the codes; offsets are per batch.
    """

    def __init__(
        self,
        n_genes: int,
        n_levels: Sequence[int],
        hidden: Sequence[int],
        latent: int,
        embedding_dim: int,
        dropout: float,
        label_conditioned: bool,
    ):
        super().__init__()
        self.n_batches = n_levels[0]
        self.n_groups = n_levels[1] if label_conditioned else 1
        self.label_conditioned = label_conditioned
        sizes = [self.n_batches + 1, *n_levels[1:]]
        self.embeddings = nn.ModuleList(nn.Embedding(n, embedding_dim) for n in sizes)
        n_codes = embedding_dim * len(sizes)
        self.encoder = _mlp(n_genes + n_codes * label_conditioned, hidden, latent, dropout)
        self.decoder = _mlp(latent + n_codes * (not label_conditioned), hidden[::-1], n_genes, dropout)
        self.offsets = nn.Embedding(self.n_batches * self.n_groups, n_genes)

    def group(self, codes: torch.Tensor) -> torch.Tensor:
        """The group of each cell for offsets and moments: its label, or 0 without labels."""
        return codes[:, 1] if self.label_conditioned else torch.zeros_like(codes[:, 0])

    def offset(self, codes: torch.Tensor) -> torch.Tensor:
        """Per-gene offset of each cell's (batch, group); zero for the neutral code."""
        neutral = (codes[:, 0] == self.n_batches).unsqueeze(1)
        rows = codes[:, 0].clamp(max=self.n_batches - 1) * self.n_groups + self.group(codes)
        return self.offsets(rows).masked_fill(neutral, 0.0)

    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([emb(codes[:, i]) for i, emb in enumerate(self.embeddings)], dim=1)

    def encode(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The latent of ``x`` (conditioned on ``codes`` in label-conditioned mode)."""
        return self.encoder(torch.cat([x, self._embed(codes)], dim=1) if self.label_conditioned else x)

    def forward(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``ReLU(x + G(x, target) + O[target] - O[source])``: residual, stays in log space."""
        z = self.encode(x, target)
        delta = self.decoder(z if self.label_conditioned else torch.cat([z, self._embed(target)], dim=1))
        return F.relu(x + delta + self.offset(target) - self.offset(source))


class Discriminator(nn.Module):
    """Critic trunk with a realness head and one classifier head per covariate.

    The trunk uses LayerNorm where the published critic used BatchNorm: with BatchNorm a
    cell's score depends on the rest of its minibatch, so the per-cell gradient norm that
    the penalty constrains is ill-defined (Gulrajani et al. 2017 recommend layer norm for
    penalised critics). Per-cell scores also make integrated-gradient explanations
    independent of how cells are batched.
    """

    def __init__(self, n_genes: int, n_levels: Sequence[int], hidden: Sequence[int], latent: int, dropout: float):
        super().__init__()
        widths = [n_genes, *hidden, latent]
        self.trunk = nn.Sequential(*(_block(a, b, dropout, nn.LayerNorm) for a, b in zip(widths[:-1], widths[1:])))
        self.realness = nn.Linear(latent, 1)
        self.classifiers = nn.ModuleList(nn.Linear(latent, n) for n in n_levels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Realness score per cell and the logits of every covariate classifier."""
        h = self.trunk(x)
        return self.realness(h).squeeze(1), [head(h) for head in self.classifiers]


class GenexModule(nn.Module):
    """Generator, discriminator and the GENEX losses.

    Parameters
    ----------
    n_genes, n_levels, hidden, latent, embedding_dim, dropout, label_conditioned
        Architecture, see :class:`Generator`; the discriminator uses the same ``hidden``,
        ``latent`` and ``dropout``.
    lambda_adv, lambda_cls, lambda_rec
        Weights of the adversarial, classification and cycle-reconstruction terms
        (published: 1, 1, 10).
    lambda_moment
        Weight of the neutral code's moment-matching term (see the module docstring).
    gp_power, gp_weight
        WGAN-div gradient penalty ``gp_weight * (E‖∇D(real)‖^p + E‖∇D(fake)‖^p)``
        (published: p = 6, weight 1).
    """

    def __init__(
        self,
        n_genes: int,
        n_levels: Sequence[int],
        hidden: Sequence[int] = (1024, 512),
        latent: int = 32,
        embedding_dim: int = 16,
        dropout: float = 0.16,
        label_conditioned: bool = True,
        lambda_adv: float = 1.0,
        lambda_cls: float = 1.0,
        lambda_rec: float = 10.0,
        lambda_moment: float = 1.0,
        gp_power: float = 6.0,
        gp_weight: float = 1.0,
    ):
        super().__init__()
        self.n_levels = list(n_levels)
        self.generator = Generator(n_genes, n_levels, hidden, latent, embedding_dim, dropout, label_conditioned)
        self.discriminator = Discriminator(n_genes, n_levels, hidden, latent, dropout)
        self.lambda_adv, self.lambda_cls, self.lambda_rec, self.lambda_moment = lambda_adv, lambda_cls, lambda_rec, lambda_moment
        self.gp_power, self.gp_weight = gp_power, gp_weight
        n_groups = self.generator.n_groups
        # Training state of the moment term, not model weights (hence not saved).
        self.register_buffer("anchor", torch.zeros(n_groups, n_genes), persistent=False)
        self.register_buffer("deviation", torch.zeros(n_levels[0], n_groups, n_genes), persistent=False)

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
        """Kaiming-normal (a = 0.2) Linear weights as published; norm layers at weight 1.

        The published N(0, 0.02) norm weights made G start near the identity but also shrank
        every layer of D and G ~50-fold, so Adam needs thousands of steps to grow them back.
        Zeroing the decoder's last layer and the offsets starts G at exactly the identity
        instead (``ReLU(x + 0) = x`` for non-negative ``x``). Draws from the global torch
        generator (the caller seeds it).
        """
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding, nn.BatchNorm1d, nn.LayerNorm)):
                m.reset_parameters()
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=LEAK)
        for tensor in (self.generator.decoder[-1].weight, self.generator.decoder[-1].bias, self.generator.offsets.weight):
            nn.init.zeros_(tensor)
        self.anchor.zero_()
        self.deviation.zero_()

    def group_means(self, x: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-(batch, group) sums and counts of ``x`` (to accumulate over chunks of cells)."""
        n_groups = self.generator.n_groups
        rows = codes[:, 0] * n_groups + self.generator.group(codes)
        sums = torch.zeros(self.neutral_code * n_groups, x.shape[1], device=x.device).index_add_(0, rows, x)
        counts = torch.bincount(rows, minlength=self.neutral_code * n_groups)
        return sums.view(self.neutral_code, n_groups, -1), counts.view(self.neutral_code, n_groups)

    def set_anchor(self, sums: torch.Tensor, counts: torch.Tensor) -> None:
        """Anchor of each group: the mean of its real cells' per-batch means, over the
        batches where the group occurs (from :meth:`group_means` over all real cells)."""
        means = sums / counts.clamp(min=1).unsqueeze(2)  # zero where a group is absent
        self.anchor.copy_(means.sum(0) / (counts > 0).sum(0).clamp(min=1).unsqueeze(1))

    def set_deviation(self, sums: torch.Tensor, counts: torch.Tensor) -> float:
        """Deviation of each (batch, group) mean neutral translation from its group's anchor
        (from :meth:`group_means` over all neutral translations); returns its mean |value|."""
        means = sums / counts.clamp(min=1).unsqueeze(2)
        deviation = (means - self.anchor.unsqueeze(0)) * (counts > 0).unsqueeze(2)
        self.deviation.copy_(deviation)
        return deviation.abs().sum().item() / max(int((counts > 0).sum()) * deviation.shape[2], 1)

    def sample_targets(self, codes: torch.Tensor, generator: torch.Generator, neutral_prob: float) -> torch.Tensor:
        """Target codes drawn uniformly per cell and covariate; with probability
        ``neutral_prob`` the target is instead the neutral batch with the cell's own other
        codes (what inference asks for). Sampled on the CPU ``generator``."""
        n = codes.shape[0]
        draws = torch.stack([torch.randint(high, (n,), generator=generator) for high in self.n_levels], dim=1).to(codes.device)
        neutral = (torch.rand(n, generator=generator) < neutral_prob).to(codes.device).unsqueeze(1)
        return torch.where(neutral, self.neutral_codes(codes), draws)

    def _classification(self, logits: list[torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy of every head; cells with the neutral batch code do not count
        for the batch head (no batch is the right answer)."""
        batched = codes[:, 0] != self.neutral_code
        loss = F.cross_entropy(logits[0][batched], codes[batched, 0]) if batched.any() else logits[0].sum() * 0.0
        for i in range(1, len(self.n_levels)):
            loss = loss + F.cross_entropy(logits[i], codes[:, i])
        return loss

    def discriminator_loss(
        self, x: torch.Tensor, codes: torch.Tensor, targets: torch.Tensor, gp_scale: float = 1.0
    ) -> DiscriminatorLoss:
        """Critic (real vs translated), gradient penalty and classification of real cells.

        ``gp_scale`` multiplies the penalty; 0 skips it (lazy regularisation computes it every
        k-th step with scale k, which keeps its expected weight).
        """
        with torch.no_grad():
            fake = self.generator(x, codes, targets)
        with_penalty = gp_scale > 0
        real = x.detach().requires_grad_(with_penalty)
        fake.requires_grad_(with_penalty)
        real_score, real_logits = self.discriminator(real)
        fake_score, _ = self.discriminator(fake)
        critic = fake_score.mean() - real_score.mean()
        if with_penalty:  # per-cell input gradients: the critic has no cross-cell terms
            grads = torch.autograd.grad(real_score.sum() + fake_score.sum(), (real, fake), create_graph=True)
            penalty = gp_scale * self.gp_weight * sum(g.norm(dim=1).pow(self.gp_power).mean() for g in grads)
        else:
            penalty = torch.zeros((), device=x.device)
        classification = self._classification(real_logits, codes)
        total = critic + penalty + self.lambda_cls * classification
        return DiscriminatorLoss(total, critic.detach(), penalty.detach(), classification.detach())

    def generator_loss(self, x: torch.Tensor, codes: torch.Tensor, targets: torch.Tensor) -> GeneratorLoss:
        """Fool the critic, be classified as the targets, cycle back to the source, and move
        neutral translations along their group's deviation from the anchor."""
        fake = self.generator(x, codes, targets)
        score, logits = self.discriminator(fake)
        adversarial = -score.mean()
        classification = self._classification(logits, targets)
        reconstruction = F.smooth_l1_loss(self.generator(fake, targets, codes), x)
        neutral = targets[:, 0] == self.neutral_code
        direction = self.deviation[codes[:, 0], self.generator.group(codes)]
        moment = ((fake * direction).sum(1) * neutral).sum() / neutral.sum().clamp(min=1)
        total = (
            self.lambda_adv * adversarial
            + self.lambda_cls * classification
            + self.lambda_rec * reconstruction
            + self.lambda_moment * moment
        )
        return GeneratorLoss(total, adversarial.detach(), classification.detach(), reconstruction.detach(), moment.detach())
