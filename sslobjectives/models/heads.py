"""Projection heads and the head-reset schedule.

- :class:`DINOHead`: MLP -> bottleneck -> L2 norm -> weight-normalised prototype layer
  [DINO, arXiv 2104.14294]; its K outputs are cluster logits.
- :class:`MLPHead` (also named ``BinaryHead`` and ``EmbeddingHead``): MLP to B logits, one per
  bit of the message [BITS, arXiv 2602.09764], or to SimDINO's embedding.

:data:`HEADS` maps an objective's ``head_kind`` to the head it reads. Every head has
``reset(generator=None)``, which re-samples every parameter from its initial distribution:
BITS re-initialises the projection head every n epochs (n = 10 best of 1, 5, 10, 20, never),
and ``freeze_last_layer()``, which drops this step's gradients of its prototype layer (DINO).
:class:`ResetSchedule` says when to reset, and whether the teacher's head receives the same
new weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from sslobjectives.suggest import did_you_mean


def _mlp(in_dim: int, hidden_dim: int, out_dim: int, n_layers: int) -> nn.Sequential:
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    if n_layers == 1:
        return nn.Sequential(nn.Linear(in_dim, out_dim))
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
    for _ in range(n_layers - 2):
        layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
    layers.append(nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(*layers)


#: ``input_norm`` values of every head: what the head does to the backbone features first.
INPUT_NORMS = ("none", "batch")


def _input_norm(kind: str, dim: int) -> nn.Module:
    """``"batch"``: an affine-free ``BatchNorm1d`` with batch statistics always (no
    parameters or buffers, so the EMA teacher, head resets and checkpoints need nothing
    new); ``"none"``: the identity."""
    if kind not in INPUT_NORMS:
        raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got {kind!r}")
    if kind == "batch":
        return nn.BatchNorm1d(dim, affine=False, track_running_stats=False)
    return nn.Identity()


def _init_linear(m: nn.Module, generator: torch.Generator | None) -> None:
    """DINO's init: truncated normal (std 0.02) weights, zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04, generator=generator)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class DINOHead(nn.Module):
    """DINO projection head. Defaults are small-scale; DINO's ViT recipe is hidden 2048,
    bottleneck 256, K = 65536.

    Args:
        in_dim: backbone feature size. out_dim: K prototypes. hidden_dim, bottleneck_dim,
        n_layers: the MLP. norm_last_layer: fix the prototype norms to 1 (DINO's default).
        input_norm: ``"none"`` (default, DINO's head) or ``"batch"``: standardise the
            backbone features over the batch before the MLP (affine-free ``BatchNorm1d``,
            batch statistics in evaluation too). A ReLU + average-pooling CNN's features
            share one direction at initialisation (mean cosine between samples 0.75-0.95 on
            shapes-hard), so the head's outputs barely differ between samples, the centred
            teacher is flat and the run slides to the uniform-teacher fixed point; centring
            and scaling the features first gives the head samples that differ
            (docs/TESTBED.md). Not in DINO's head: an option, off by default.

    >>> head = DINOHead(32, 64)
    >>> head(torch.randn(4, 32)).shape
    torch.Size([4, 64])
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 512,
        bottleneck_dim: int = 128,
        n_layers: int = 3,
        norm_last_layer: bool = True,
        input_norm: str = "none",
    ):
        super().__init__()
        self.in_norm = _input_norm(input_norm, in_dim)
        self.mlp = _mlp(in_dim, hidden_dim, bottleneck_dim, n_layers)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.norm_last_layer = norm_last_layer
        self.reset()

    def reset(self, generator: torch.Generator | None = None) -> None:
        """Re-sample every parameter from its initial distribution."""
        self.mlp.apply(lambda m: _init_linear(m, generator))
        param = self.last_layer.parametrizations.weight
        with torch.no_grad():
            nn.init.trunc_normal_(param.original1, std=0.02, a=-0.04, b=0.04, generator=generator)
            param.original0.fill_(1.0)
        param.original0.requires_grad_(not self.norm_last_layer)

    def freeze_last_layer(self) -> None:
        """Drop this step's gradients of the prototype layer: DINO keeps it fixed for the
        first epoch, while the randomly initialised prototypes would otherwise chase the
        still-moving features and collapse."""
        for p in self.last_layer.parameters():
            p.grad = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.normalize(self.mlp(self.in_norm(x)), dim=-1)
        return self.last_layer(x)


#: ``MLPHead.logit_norm`` values.
LOGIT_NORMS = ("none", "batch")


class MLPHead(nn.Module):
    """MLP projection head to ``out_dim`` outputs, for the objectives that read them directly:
    the B logits of the binary channel (``a``; the bits are ``1[a > 0]``) [BITS,
    arXiv 2602.09764], or SimDINO's embedding [arXiv 2502.10385]. One class: the two heads
    differ only in what the objective makes of the outputs.

    Args:
        in_dim: backbone feature size. out_dim: outputs (B bits). hidden_dim, n_layers: the MLP.
        logit_norm: ``"none"`` (default) or ``"batch"``: an affine-free ``BatchNorm1d`` on the
            outputs, which centres every bit over the batch and fixes its scale to 1. Without
            it the MLP's DINO init (std 0.02 per layer) starts the BITS logits at |a| ~ 0.002,
            where the coding-rate term's gradient (on the L2-normalised logits, so scaled by
            1/|a|) outweighs the BCE's by an order of magnitude and keeps the channel closed
            (BCE ~ B ln 2); freeing the scale instead (no rate term, larger init) collapses
            the message to a constant code. (BatchNorm's eps = 1e-5 is comparable to the
            logits' initial variance, so their initial scale is about 0.6-0.8, not 1.)
            Measured in docs/TESTBED.md. The statistics are always those of the batch, in
            evaluation too (no running averages: they lag the head, and after a head reset
            they describe the old weights, which made the eval-mode codes near-constant), so
            a sample's outputs depend on the batch it is extracted with (512 images at
            evaluation), and a multi-process run (no SyncBatchNorm) differs slightly from one
            process.
        input_norm: ``"none"`` (default) or ``"batch"``: standardise the backbone features
            over the batch before the MLP, as :class:`DINOHead`'s ``input_norm``.

    >>> MLPHead(32, 16)(torch.randn(4, 32)).shape
    torch.Size([4, 16])
    >>> _ = torch.manual_seed(0)
    >>> a = MLPHead(32, 16, logit_norm="batch")(torch.randn(64, 32)).detach()
    >>> bool(a.mean(0).abs().max() < 1e-4), 0.5 < float(a.var(0, unbiased=False).mean()) <= 1
    (True, True)
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 256,
        hidden_dim: int = 512,
        n_layers: int = 3,
        logit_norm: str = "none",
        input_norm: str = "none",
    ):
        super().__init__()
        self.in_norm = _input_norm(input_norm, in_dim)
        if logit_norm not in LOGIT_NORMS:
            raise ValueError(
                f"logit_norm must be one of {', '.join(LOGIT_NORMS)}, got {logit_norm!r}"
            )
        self.mlp = _mlp(in_dim, hidden_dim, out_dim, n_layers)
        self.logit_norm = logit_norm
        # affine-free: no parameters, so the EMA teacher and head resets need nothing new
        self.norm = (
            nn.BatchNorm1d(out_dim, affine=False, track_running_stats=False)
            if logit_norm == "batch"
            else nn.Identity()
        )
        self.reset()

    def reset(self, generator: torch.Generator | None = None) -> None:
        """Re-sample every parameter from its initial distribution."""
        self.mlp.apply(lambda m: _init_linear(m, generator))

    def freeze_last_layer(self) -> None:
        """No prototype layer: nothing to freeze."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.mlp(self.in_norm(x)))


#: The binary-channel head and the continuous-embedding head are the same MLP.
BinaryHead = EmbeddingHead = MLPHead


def _cluster_head(
    in_dim: int, out_dim: int, hidden_dim: int, n_layers: int, bottleneck_dim: int, **options
):
    return DINOHead(in_dim, out_dim, hidden_dim, bottleneck_dim, n_layers, **options)


def _mlp_head(
    in_dim: int, out_dim: int, hidden_dim: int, n_layers: int, bottleneck_dim: int, **options
):
    # no bottleneck before the outputs
    return MLPHead(in_dim, out_dim, hidden_dim, n_layers, **options)


#: The head each objective family reads, keyed by the objective's declared ``head_kind``:
#: ``HEADS[kind](in_dim, out_dim, hidden_dim, n_layers, bottleneck_dim, **options)``. A new
#: head kind is one entry here (and its options in ``HEAD_OPTIONS``).
HEADS = {"cluster": _cluster_head, "binary": _mlp_head, "embedding": _mlp_head}

#: The further options (``RunConfig.head_kwargs``) each head kind accepts: its class's
#: keyword arguments that the run's sizes do not already set.
HEAD_OPTIONS: dict[str, tuple[str, ...]] = {
    "cluster": ("norm_last_layer", "input_norm"),
    "binary": ("logit_norm", "input_norm"),
    "embedding": ("logit_norm", "input_norm"),
}


def head_options(kind: str) -> tuple[str, ...]:
    """The ``head_kwargs`` keys the head of ``kind`` accepts.

    >>> head_options("binary")
    ('logit_norm', 'input_norm')
    """
    return HEAD_OPTIONS.get(kind, ())


def build_head(
    kind: str,
    in_dim: int,
    out_dim: int,
    hidden_dim: int,
    n_layers: int,
    bottleneck_dim: int,
    **options,
) -> nn.Module:
    """The projection head of ``head_kind`` ``kind``.

    >>> type(build_head("binary", 8, 4, 16, 2, 3)).__name__
    'MLPHead'
    >>> build_head("clustre", 8, 4, 16, 2, 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown head_kind 'clustre' (did you mean 'cluster'?); valid: binary, ...
    """
    if kind not in HEADS:
        hint = did_you_mean(kind, HEADS)
        raise ValueError(f"unknown head_kind {kind!r}{hint}; valid: {', '.join(sorted(HEADS))}")
    unknown = [k for k in options if k not in head_options(kind)]
    if unknown:
        valid = head_options(kind)
        raise ValueError(
            f"unknown option {unknown[0]!r} for the {kind} head{did_you_mean(unknown[0], valid)}"
            f"; valid: {', '.join(valid) or 'none'}"
        )
    return HEADS[kind](in_dim, out_dim, hidden_dim, n_layers, bottleneck_dim, **options)


@dataclass(frozen=True)
class ResetSchedule:
    """When to re-initialise the projection head [BITS: every n = 10 of 100 epochs is best].

    Attributes:
        period: reset at the start of every epoch that is a positive multiple of ``period``;
            ``None`` never resets.
        reset_teacher: give the teacher's head the same new weights (default), or keep the
            teacher's head as it is.

    >>> [e for e in range(25) if ResetSchedule(period=10).due(e)]
    [10, 20]
    >>> ResetSchedule(period=None).due(10)
    False
    """

    period: int | None = None
    reset_teacher: bool = True

    def __post_init__(self) -> None:
        if self.period is not None and (
            isinstance(self.period, bool) or not isinstance(self.period, int) or self.period < 1
        ):
            raise ValueError(f"period must be None or an integer >= 1, got {self.period!r}")

    def due(self, epoch: int) -> bool:
        """Whether the head is reset at the start of ``epoch`` (0-based)."""
        return self.period is not None and epoch > 0 and epoch % self.period == 0

    def apply(
        self,
        student_head: nn.Module,
        teacher_head: nn.Module | None,
        epoch: int,
        generator: torch.Generator | None = None,
    ) -> bool:
        """Reset the heads if due at ``epoch``; return whether it did."""
        if not self.due(epoch):
            return False
        student_head.reset(generator)
        if teacher_head is not None and self.reset_teacher:
            teacher_head.load_state_dict(student_head.state_dict())
        return True
