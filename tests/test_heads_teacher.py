"""Projection heads (reset re-samples parameters), the reset schedule, the EMA teacher and its
cosine momentum schedule."""

import copy
import math

import pytest
import torch
from torch import nn

from sslobjectives.heads import BinaryHead, DINOHead, EmbeddingHead, ResetSchedule
from sslobjectives.teacher import EMATeacher, cosine_momentum

HEADS = {
    "dino": lambda: DINOHead(8, 16, hidden_dim=12, bottleneck_dim=6),
    "binary": lambda: BinaryHead(8, 10, hidden_dim=12),
    "embedding": lambda: EmbeddingHead(8, 5, hidden_dim=12),
}


def params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def perturb(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))


@pytest.mark.parametrize("name", list(HEADS))
def test_reset_resamples_every_weight_and_is_reproducible_with_a_generator(name):
    torch.manual_seed(0)
    head = HEADS[name]()
    before = params(head)
    head.reset(torch.Generator().manual_seed(7))
    first = params(head)
    for key, value in first.items():
        if key.endswith("weight") or key.endswith("original1"):
            assert not torch.equal(value, before[key]), key  # re-sampled
        if key.endswith("bias"):
            assert torch.equal(value, torch.zeros_like(value)), key
    perturb(head)
    head.reset(torch.Generator().manual_seed(7))
    for key, value in params(head).items():
        assert torch.equal(value, first[key]), key
    head.reset(torch.Generator().manual_seed(8))
    assert any(not torch.equal(v, first[k]) for k, v in params(head).items())


@pytest.mark.parametrize("name", list(HEADS))
def test_reset_weights_follow_the_initial_truncated_normal(name):
    head = HEADS[name]()
    head.reset(torch.Generator().manual_seed(0))
    for key, value in params(head).items():
        if key.endswith("weight") or key.endswith("original1"):
            assert value.abs().max() <= 0.04 + 1e-7, key
            assert 0.005 < float(value.std()) < 0.03, key


@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_dino_head_prototype_norm_reset_to_one(norm_last_layer):
    head = DINOHead(8, 16, hidden_dim=12, bottleneck_dim=6, norm_last_layer=norm_last_layer)
    g = head.last_layer.parametrizations.weight.original0
    assert g.requires_grad is (not norm_last_layer)
    with torch.no_grad():
        g.mul_(3.0)
    head.reset()
    g = head.last_layer.parametrizations.weight.original0
    assert torch.equal(g, torch.ones_like(g))
    assert g.requires_grad is (not norm_last_layer)
    # with g = 1 every prototype (row of the weight) has unit norm
    rows = head.last_layer.weight.norm(dim=1)
    torch.testing.assert_close(rows, torch.ones_like(rows))


def test_dino_head_output_is_cosine_to_unit_prototypes():
    head = DINOHead(8, 16, hidden_dim=12, bottleneck_dim=6)
    out = head(torch.randn(5, 8))
    assert out.shape == (5, 16) and out.abs().max() <= 1 + 1e-6


def test_reset_schedule_due_epochs():
    assert [e for e in range(31) if ResetSchedule(period=10).due(e)] == [10, 20, 30]
    assert [e for e in range(4) if ResetSchedule(period=1).due(e)] == [1, 2, 3]
    assert not any(ResetSchedule(period=None).due(e) for e in range(50))
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="period must be None or an integer >= 1"):
            ResetSchedule(period=bad)


@pytest.mark.parametrize("reset_teacher", [True, False])
def test_reset_schedule_apply_resets_student_and_optionally_teacher(reset_teacher):
    torch.manual_seed(0)
    student = BinaryHead(8, 10, hidden_dim=12)
    teacher = copy.deepcopy(student)
    perturb(teacher)
    teacher_before, student_before = params(teacher), params(student)
    sched = ResetSchedule(period=5, reset_teacher=reset_teacher)

    assert sched.apply(student, teacher, epoch=3) is False
    assert all(torch.equal(v, student_before[k]) for k, v in params(student).items())

    assert (
        sched.apply(student, teacher, epoch=5, generator=torch.Generator().manual_seed(1)) is True
    )
    expected = BinaryHead(8, 10, hidden_dim=12)
    expected.reset(torch.Generator().manual_seed(1))
    for key, value in params(student).items():
        assert torch.equal(value, params(expected)[key]), key
    for key, value in params(teacher).items():
        wanted = params(student)[key] if reset_teacher else teacher_before[key]
        assert torch.equal(value, wanted), key
    assert sched.apply(student, None, epoch=10) is True


# --------------------------------------------------------------------------- EMA teacher


def test_ema_update_formula_and_buffer_copy():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    teacher = EMATeacher(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    perturb(student)
    student(torch.randn(6, 3))  # moves the BatchNorm running statistics
    old = [p.clone() for p in teacher.module.parameters()]
    teacher.update(student, momentum=0.9)
    for t, o, s in zip(teacher.module.parameters(), old, student.parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * o + 0.1 * s.detach())
    for tb, sb in zip(teacher.module.buffers(), student.buffers(), strict=True):
        assert torch.equal(tb, sb)
    x = torch.randn(2, 3)
    teacher.eval()
    torch.testing.assert_close(teacher(x), teacher.module(x))


def test_ema_momentum_extremes_and_validation():
    student = nn.Linear(3, 2)
    teacher = EMATeacher(student)
    frozen = [p.clone() for p in teacher.parameters()]
    perturb(student)
    teacher.update(student, momentum=1.0)
    assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), frozen, strict=True))
    teacher.update(student, momentum=0.0)
    pairs = zip(teacher.parameters(), student.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    for m in (-0.1, 1.1):
        with pytest.raises(ValueError, match="momentum must be in"):
            teacher.update(student, momentum=m)
    with pytest.raises(ValueError, match="different parameter lists"):
        teacher.update(nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)), momentum=0.5)


def test_cosine_momentum_endpoints_formula_and_monotonicity():
    total = 100
    assert cosine_momentum(0, total) == 0.996
    assert cosine_momentum(total, total) == 1.0
    assert math.isclose(cosine_momentum(50, total), 0.998)
    assert cosine_momentum(-5, total) == 0.996 and cosine_momentum(500, total) == 1.0
    values = [cosine_momentum(s, total, base=0.9, final=0.99) for s in range(total + 1)]
    assert values[0] == 0.9 and math.isclose(values[-1], 0.99)
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    for s in (10, 37, 81):
        expected = 0.99 - 0.09 * (1 + math.cos(math.pi * s / total)) / 2
        assert math.isclose(values[s], expected)
    with pytest.raises(ValueError, match="total_steps must be > 0"):
        cosine_momentum(0, 0)
    with pytest.raises(ValueError, match="need 0 <= base <= final <= 1"):
        cosine_momentum(0, 10, base=0.99, final=0.9)


def test_mlp_rejects_zero_layers():
    with pytest.raises(ValueError, match="n_layers must be >= 1"):
        BinaryHead(4, 2, n_layers=0)
    assert isinstance(BinaryHead(4, 2, n_layers=1).mlp[0], nn.Linear)


def test_heads_table_covers_every_head_kind_and_builds_the_old_heads():
    from sslobjectives.models import HEADS, MLPHead, build_head, build_student
    from sslobjectives.models.backbones import build_backbone
    from sslobjectives.objectives import REGISTRY

    assert set(HEADS) == {cls.head_kind for cls in REGISTRY.values()}
    assert BinaryHead is EmbeddingHead is MLPHead  # one class where two were the same
    assert isinstance(build_head("cluster", 8, 16, 12, 3, 6), DINOHead)
    assert build_head("embedding", 8, 5, 12, 2, 6)(torch.randn(3, 8)).shape == (3, 5)
    with pytest.raises(ValueError, match="unknown head_kind 'clusters'.*did you mean 'cluster'"):
        build_head("clusters", 8, 16, 12, 3, 6)
    # the student of each kind is initialised exactly as the trainer built it before
    for kind in HEADS:
        torch.manual_seed(3)
        backbone = build_backbone("cnn", 1, 8)
        d = backbone.out_dim
        old = DINOHead(d, 16, 24, 8, 2) if kind == "cluster" else MLPHead(d, 16, 24, 2)
        new = build_student(
            backbone="cnn",
            in_channels=1,
            image_size=8,
            head_kind=kind,
            head_dim=16,
            head_hidden=24,
            head_layers=2,
            bottleneck_dim=8,
            seed=3,
        )
        expected = {
            **{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
            **{f"head.{k}": v for k, v in old.state_dict().items()},
        }
        got = new.state_dict()
        assert got.keys() == expected.keys()
        for k, v in expected.items():
            assert torch.equal(got[k], v), k


@pytest.mark.parametrize("cls", [DINOHead, BinaryHead])
def test_input_norm_standardises_the_features_over_the_batch_and_adds_no_state(cls):
    torch.manual_seed(0)
    plain = cls(16, 8, hidden_dim=32, n_layers=2)
    normed = cls(16, 8, hidden_dim=32, n_layers=2, input_norm="batch")
    normed.load_state_dict(plain.state_dict())  # same parameters, no new ones or buffers
    assert plain.state_dict().keys() == normed.state_dict().keys()
    # features sharing one large positive direction, as a ReLU + pooling CNN gives
    x = 5.0 + 0.1 * torch.randn(64, 16)
    z = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
    normed.eval()  # batch statistics in evaluation too
    assert torch.allclose(normed(x), plain(z), atol=1e-5)
    assert not torch.allclose(plain(x), plain(z), atol=1e-3)
    with pytest.raises(ValueError, match="input_norm must be one of none, batch"):
        cls(16, 8, input_norm="layer")


def test_input_norm_is_a_head_option_of_every_kind():
    from sslobjectives.models.heads import build_head, head_options

    for kind in ("cluster", "binary", "embedding"):
        assert "input_norm" in head_options(kind)
        head = build_head(kind, 16, 8, 32, 2, 4, input_norm="batch")
        assert isinstance(head.in_norm, nn.BatchNorm1d) and not head.in_norm.affine
