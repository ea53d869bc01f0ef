"""Backbones: output shapes on global and local crops, gradients, determinism, errors."""

import sys

import pytest
import torch

from sslobjectives.models import build_backbone

NAMES = ("cnn", "mlp", "vit")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("channels", "size", "local"), [(1, 8, 4), (3, 32, 16), (1, 8, 6)])
def test_output_shape_global_and_local(name, channels, size, local):
    torch.manual_seed(0)
    net = build_backbone(name, in_channels=channels, image_size=size)
    assert isinstance(net.out_dim, int) and net.out_dim > 0
    for side in (size, local):
        out = net(torch.rand(5, channels, side, side))
        assert out.shape == (5, net.out_dim)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    net = build_backbone(name, in_channels=1, image_size=8)
    x = torch.rand(6, 1, 8, 8, requires_grad=True)
    loss = net(x).pow(2).sum() + net(torch.rand(6, 1, 4, 4)).pow(2).sum()
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_initialisation_fixed_by_manual_seed(name):
    nets = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        nets.append(build_backbone(name, in_channels=1, image_size=8))
    same = zip(nets[0].state_dict().values(), nets[1].state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in same)
    x = torch.rand(3, 1, 8, 8)
    assert not torch.equal(nets[0](x), nets[2](x))


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_independent(name):
    # No batch coupling (GroupNorm, per-sample attention): a sample's features do not
    # depend on the rest of the batch, so sharded batches give the same features.
    torch.manual_seed(0)
    net = build_backbone(name, in_channels=1, image_size=8)
    x = torch.rand(8, 1, 8, 8)
    assert torch.allclose(net(x)[:3], net(x[:3]), atol=1e-5)


def test_options_are_used():
    cnn = build_backbone("cnn", 1, 8, widths=(8, 16), norm="batch")
    assert cnn.out_dim == 16
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in cnn.modules())
    mlp = build_backbone("mlp", 1, 8, out_dim=32, hidden=64)
    assert mlp(torch.rand(2, 1, 8, 8)).shape == (2, 32)
    vit = build_backbone("vit", 1, 8, dim=32, depth=1, heads=2)
    assert vit.out_dim == 32 and vit.patch_size == 2
    assert build_backbone("vit", 1, 32).patch_size == 4


def test_cnn_strides_keep_the_resolution_and_are_checked():
    torch.manual_seed(0)
    default = build_backbone("cnn", 1, 16)
    strided = build_backbone("cnn", 1, 16, strides=(1, 2, 2))
    convs = [m for m in strided.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(1, 1), (2, 2), (2, 2)]
    assert all(c.stride == (2, 2) for c in default.modules() if isinstance(c, torch.nn.Conv2d))
    x = torch.rand(2, 1, 16, 16)
    # the last block sees 4x4 instead of 2x2: same output size, other features
    assert strided.features(x).shape[2:] == (4, 4) and default.features(x).shape[2:] == (2, 2)
    assert strided(x).shape == default(x).shape == (2, 128)
    for bad in [(1, 2), (0, 2, 2), (1.5, 2, 2), (True, 2, 2)]:
        with pytest.raises(ValueError, match="strides must be one positive int per block"):
            build_backbone("cnn", 1, 16, strides=bad)


def test_cnn_pool_grid_keeps_coarse_positions_and_is_checked():
    torch.manual_seed(0)
    net = build_backbone("cnn", 1, 16, strides=(1, 2, 2), pool_grid=2)
    x = torch.rand(3, 1, 16, 16)
    fmap = net.features(x)  # (3, 128, 4, 4): each cell of the 2x2 grid averages 2x2 positions
    expected = fmap.reshape(3, 128, 2, 2, 2, 2).mean(dim=(3, 5)).flatten(1)
    assert net.out_dim == 512 and torch.allclose(net(x), expected, atol=1e-6)
    assert net(torch.rand(3, 1, 8, 8)).shape == (3, 512)  # any input size, as before
    default = build_backbone("cnn", 1, 16, strides=(1, 2, 2))
    default.load_state_dict(net.state_dict())  # the same weights: the pooling has none
    assert torch.allclose(default(x), fmap.mean(dim=(2, 3)))
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="pool_grid must be a positive int"):
            build_backbone("cnn", 1, 16, pool_grid=bad)


def test_mlp_resizes_local_crops():
    torch.manual_seed(0)
    net = build_backbone("mlp", 1, 8)
    small = torch.rand(2, 1, 4, 4)
    upsampled = torch.nn.functional.interpolate(small, size=(8, 8), mode="bilinear")
    assert torch.allclose(net(small), net(upsampled), atol=1e-6)


def test_unknown_name_and_option():
    with pytest.raises(ValueError, match="cnn.*mlp.*vit"):
        build_backbone("resnet", 1, 8)
    with pytest.raises(ValueError, match="did you mean 'widths'"):
        build_backbone("cnn", 1, 8, width=(8,))
    with pytest.raises(ValueError, match="patch"):
        build_backbone("vit", 1, 8)(torch.rand(2, 1, 1, 1))


def test_timm_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(ImportError, match=r"pip install sslobjectives\[timm\]"):
        build_backbone("timm:resnet18", 1, 32)
