"""Gradient clipping: DINO's per-parameter rule (the default) and the global norm."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sslobjectives.train import RunConfig
from sslobjectives.train.clipping import clip_gradients


def dino_reference(grads: list[torch.Tensor | None], clip: float) -> list[torch.Tensor | None]:
    """DINO (arXiv 2104.14294): per parameter, ``c = clip / (|g|_2 + 1e-6)``; if ``c < 1``
    then ``g <- c g``. Written element by element in float64 Python arithmetic."""
    out = []
    for g in grads:
        if g is None:
            out.append(None)
            continue
        norm = math.sqrt(sum(float(x) ** 2 for x in g.reshape(-1)))
        coef = clip / (norm + 1e-6)
        out.append(g * coef if coef < 1 else g.clone())
    return out


def _params_with_grads(seed: int, scales=(0.01, 1.0, 50.0, 3.0)) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    params = []
    for i, scale in enumerate(scales):
        p = nn.Parameter(torch.zeros(3 + i, 2, dtype=torch.float64))
        p.grad = scale * torch.randn(p.shape, generator=g, dtype=torch.float64)
        params.append(p)
    params.append(nn.Parameter(torch.zeros(2, dtype=torch.float64)))  # no gradient
    return params


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("clip", [0.5, 3.0, 1e3])
def test_per_param_clipping_equals_dinos_rule(seed, clip):
    params = _params_with_grads(seed)
    expected = dino_reference([p.grad for p in params], clip)
    clip_gradients(params, clip, "per_param")
    for p, e in zip(params, expected, strict=True):
        if e is None:
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, e, rtol=1e-12, atol=0)


def test_per_param_clips_each_tensor_on_its_own_where_global_shrinks_all():
    per, glob = _params_with_grads(5), _params_with_grads(5)
    small_before = per[0].grad.clone()
    clip_gradients(per, 3.0, "per_param")
    clip_gradients(glob, 3.0, "global")
    torch.testing.assert_close(per[0].grad, small_before)  # a small gradient is left alone
    assert float(glob[0].grad.norm()) < 0.5 * float(small_before.norm())  # shrunk by the big one
    for p in per:
        if p.grad is not None:
            assert float(p.grad.norm()) <= 3.0 + 1e-9


def test_global_clipping_is_one_norm_over_all_gradients():
    params, ref = _params_with_grads(7), _params_with_grads(7)
    clip_gradients(params, 3.0, "global")
    total = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in ref if p.grad is not None))
    for p, r in zip(params, ref, strict=True):
        if r.grad is not None:
            torch.testing.assert_close(p.grad, r.grad * (3.0 / (total + 1e-6)))


def test_bad_mode_is_an_error_naming_the_modes():
    with pytest.raises(ValueError, match="clip mode must be one of per_param, global"):
        clip_gradients(_params_with_grads(0), 1.0, "layer")
    with pytest.raises(ValueError, match="clip_mode must be one of per_param, global"):
        RunConfig(clip_mode="perparam")


def test_run_config_default_is_dinos_per_parameter_clipping():
    assert RunConfig().clip_mode == "per_param"
    assert RunConfig().run_id != RunConfig(clip_mode="global").run_id
