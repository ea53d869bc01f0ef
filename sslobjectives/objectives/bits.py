"""BITS: self-supervised learning as discrete communication [BITS, arXiv 2602.09764].

The teacher sends a B-bit message ``z_hat = 1[a > 0]`` (MAP decoding of ``sigmoid(a)``);
every student view predicts the bits of every other teacher view by binary cross-entropy
(the stand-in for ``H(Z1 | Z2)``), while a coding-rate term on the L2-normalised
pre-binarisation student logits keeps the code spread out (the stand-in for ``H(Z)``):
``L = BCE - beta * R_eps``. Periodic reset of the projection head lives in
:mod:`sslobjectives.heads` (``ResetSchedule``), not here: an objective never reaches into the
model.

The head matters here. With the plain MLP head (DINO's init, std 0.02 per layer) the logits
start at |a| ~ 0.002; the coding-rate gradient, taken on the L2-normalised logits and so
scaled by 1/|a|, then outweighs the BCE's (12x on the head's last layer, 34x on the first
convolution, measured on digits) and holds the channel shut: after 30 epochs the BCE is
0.98 B ln 2 and |a| 0.003. ``sslobj compare`` therefore runs ``bits`` with
``head_kwargs={"logit_norm": "batch"}`` (:class:`~sslobjectives.models.MLPHead`: an
affine-free BatchNorm on the logits), which opens it (BCE 0.71 B ln 2, |a| 0.77 on digits).
This is a deliberate, measured difference: the BITS paper's head code is not available to
us. ``logit_norm="none"`` (the head's default) stays available. Measurements and commands:
docs/TESTBED.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslobjectives import _dist, diagnostics
from sslobjectives import functional as Fn
from sslobjectives.objectives.base import LossOutput, Objective, check_config_values


@dataclass(frozen=True)
class BitsConfig:
    """Hyperparameters of :class:`BITS`.

    Attributes:
        beta: 0.1, the coding-rate weight the BITS paper finds best (arXiv 2602.09764,
            beta ablation: 0.05, 0.1, 0.2, 0.5). Scale: the BCE term is the message's
            cross-entropy in nats, summed over bits and averaged over samples and pairs.
        eps: 0.5, the coding-rate distortion ``eps`` (``d / (n eps^2)`` in the rate). The BITS
            paper's value is not available to us; 0.5 is our choice. (SimDINO's ``eps = 0.5``,
            arXiv 2502.10385, enters its rate as ``d / (n eps)``: it is our ``eps^2``, i.e.
            ``eps = sqrt(0.5)``, the default of ``simdino``.)
        targets: ``"hard"`` (default, the paper's choice: MAP bits) or ``"soft"``
            (``sigmoid(a / tau)``, the paper's ablation, which it reports collapses at tau=1).
        tau: temperature of soft targets.
    """

    beta: float = 0.1
    eps: float = 0.5
    targets: str = "hard"
    tau: float = 1.0

    def __post_init__(self) -> None:
        check_config_values(self)
        if not isinstance(self.beta, (int, float)) or self.beta < 0:
            raise ValueError(f"beta must be a number >= 0, got {self.beta!r}")
        Fn.check_positive(self.eps, "eps")
        Fn.check_positive(self.tau, "tau")
        if self.targets not in ("hard", "soft"):
            raise ValueError(f"targets must be 'hard' or 'soft', got {self.targets!r}")


class BITS(Objective):
    """Binary channel objective: BCE on teacher bits plus coding-rate regulariser.

    Terms: ``bce`` (mean over view pairs), ``rate`` (mean over the student's global views of
    ``coding_rate``); ``loss = bce - beta * rate``. Stats describe the teacher's message.

    Equals the BITS loss as the paper states it (arXiv 2602.09764: BCE on the teacher's MAP
    bits, minus ``beta`` times the coding rate of the student's L2-normalised
    pre-binarisation logits): ``tests/test_objectives.py::test_bits_equals_bce_minus_beta_rate``.
    Deliberate differences: every view pair except a view with itself (the paper's two-view
    symmetric BCE extended to multi-crop); ``eps`` is our choice (see :class:`BitsConfig`);
    ``targets="soft"`` is the paper's ablation.

    >>> torch.manual_seed(0) and None
    >>> obj = BITS()
    >>> views = [torch.randn(16, 32) for _ in range(4)]
    >>> out = obj(views, views[:2])
    >>> sorted(out.terms)
    ['bce', 'rate']
    >>> bool(torch.isclose(out.loss, out.terms["bce"] - 0.1 * out.terms["rate"]))
    True
    """

    name = "bits"
    Config = BitsConfig
    head_kind = "binary"

    def message(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """The targets the student predicts: hard bits or soft ``sigmoid(a / tau)``."""
        if self.config.targets == "hard":
            return Fn.binary_message(teacher_logits)
        return Fn.soft_message(teacher_logits, self.config.tau)

    def compute(self, student, teacher, epoch, stats) -> LossOutput:
        cfg = self.config
        targets = [self.message(t.detach()) for t in teacher]
        bce = Fn.multicrop_binary_agreement(student, targets)
        rate = torch.stack([Fn.coding_rate(s, cfg.eps) for s in student[: len(teacher)]]).mean()
        out = LossOutput(loss=bce - cfg.beta * rate, terms={"bce": bce, "rate": rate})
        if stats:
            out.stats = lambda: self.diagnostics([t.detach() for t in teacher])
        return out

    @staticmethod
    def diagnostics(teacher: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Bit usage of the teacher's message over the joined batch (every process's rows,
        view by view)."""
        bits = torch.cat([_dist.gather_rows(Fn.binary_message(t)) for t in teacher])
        return diagnostics.bit_stats(bits)

    # -- end-of-run evaluation ----------------------------------------------------------

    def final_codes(self, train_out, test_out, with_factors):
        """The hard messages of train and test images (scored by k-NN, mAP and factor MI)."""
        return {
            "codes_train": Fn.binary_message(train_out),
            "codes_test": Fn.binary_message(test_out),
        }

    def final_stats(self, test_out):
        """Per-bit and mean marginal entropy, dead bits and bit correlation of the test
        messages (BITS reports ~0.9 bit of marginal entropy per bit), and the logit scale
        (median |a| of the test logits)."""
        bits = Fn.binary_message(test_out)
        out: dict = {"bit_entropy_per_bit": diagnostics.bit_marginal_entropy(bits).tolist()}
        # the teacher's logit scale: near 0 the message is decided by noise (channel closed)
        out["logit_scale"] = float(test_out.abs().median())
        out.update({k: float(v) for k, v in diagnostics.bit_stats(bits).items()})
        return out
