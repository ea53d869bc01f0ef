"""Datasets (digits, shapes, npz, image folders) and multi-crop augmentation."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from sslobjectives.data import (
    SHAPE_NAMES,
    DataError,
    ImageDataset,
    MultiCropAugment,
    default_augment,
    load_dataset,
    make_shapes,
)

# ----------------------------------------------------------------------------- shapes


def test_shapes_same_seed_identical_different_seed_different():
    a = make_shapes(64, size=16, seed=3, noise=(0.0, 0.1))
    b = make_shapes(64, size=16, seed=3, noise=(0.0, 0.1))
    c = make_shapes(64, size=16, seed=4, noise=(0.0, 0.1))
    for left, right in zip(a[:3], b[:3], strict=True):
        assert torch.equal(left, right)
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[2], c[2])


def test_shapes_types_factors_and_classes():
    x, y, factors, names = make_shapes(300, size=16, seed=0)
    assert x.shape == (300, 1, 16, 16) and x.dtype == torch.float32
    assert y.shape == (300,) and y.dtype == torch.int64
    assert factors.shape == (300, len(names)) and factors.dtype == torch.float32
    assert names == ("scale", "pos_x", "pos_y", "rotation", "intensity", "noise", "shape")
    assert 0 <= x.min() and x.max() <= 1
    assert set(y.tolist()) == set(range(len(SHAPE_NAMES))) and len(SHAPE_NAMES) >= 4
    assert torch.equal(factors[:, -1], y.float())
    assert x.flatten(1).amax(1).min() > 0  # every image shows a shape


def test_shapes_factor_ranges_respected_and_shifted():
    ranges = {"scale": (0.5, 0.8), "intensity": (0.3, 0.6), "pos_x": (-0.1, 0.2)}
    x, _, factors, names = make_shapes(200, size=16, seed=1, **ranges)
    col = {name: factors[:, i] for i, name in enumerate(names)}
    for name, (lo, hi) in ranges.items():
        assert lo <= col[name].min() and col[name].max() <= hi
        assert col[name].max() - col[name].min() > 0.5 * (hi - lo)  # the range is used
    assert torch.all(col["noise"] == 0)
    # Without noise the brightest pixel is the shape's intensity at most.
    assert torch.all(x.flatten(1).amax(1) <= col["intensity"] + 1e-6)
    noisy = make_shapes(50, size=16, seed=1, noise=0.1)
    assert torch.allclose(noisy[2][:, names.index("noise")], torch.tensor(0.1))
    background = noisy[0][:, 0, 0, 0]  # corners are background
    assert background.std() > 0.02


@pytest.mark.parametrize(("shape", "area"), [("circle", math.pi * 0.45**2), ("square", 0.8**2)])
def test_shapes_render_the_expected_area(shape, area):
    # scale 0.5: circle radius 0.9 * 0.5, square half-side 0.8 * 0.5, image spans [-1, 1].
    size = 64
    x, y, _, _ = make_shapes(
        60, size=size, scale=0.5, pos_x=0.0, pos_y=0.0, rotation=0.0, intensity=1.0
    )
    pixel_area = (2 / (size - 1)) ** 2
    covered = x[y == SHAPE_NAMES.index(shape)].sum(dim=(1, 2, 3)) * pixel_area
    assert len(covered) > 0
    assert torch.allclose(covered, torch.tensor(area, dtype=torch.float32), rtol=0.03)


def test_shapes_bad_options():
    with pytest.raises(ValueError, match="intensity"):
        make_shapes(4, intensty=(0.1, 0.2))
    with pytest.raises(ValueError, match="low <= high"):
        make_shapes(4, scale=(0.6, 0.3))
    with pytest.raises(ValueError, match="intensity"):
        make_shapes(4, intensity=(0.5, 1.5))


def test_load_shapes_passes_options():
    ds = load_dataset("shapes", n=80, size=12, seed=2, intensity=(0.3, 0.6))
    assert ds.name == "shapes" and ds.image_size == 12 and ds.in_channels == 1
    assert ds.split["n_train"] + ds.split["n_test"] == 80
    assert ds.factors_train.shape == (ds.split["n_train"], len(ds.factor_names))
    col = ds.factor_names.index("intensity")
    assert ds.factors_test[:, col].max() <= 0.6
    assert torch.equal(ds.factors_train[:, -1].long(), ds.y_train)
    assert ds.num_classes == len(SHAPE_NAMES) and ds.class_names == SHAPE_NAMES


# ----------------------------------------------------------------------------- digits


def test_digits_basic_properties():
    ds = load_dataset("digits")
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.x_train.dtype == torch.float32
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.min() >= 0 and ds.x_train.max() == 1.0
    assert (ds.in_channels, ds.image_size, ds.num_classes) == (1, 8, 10)
    assert ds.factors_train is None and ds.factor_names == ()


def test_digits_split_is_stratified():
    ds = load_dataset("digits", test_fraction=0.25)
    train = torch.bincount(ds.y_train, minlength=10)
    test = torch.bincount(ds.y_test, minlength=10)
    expected = 0.25 * (train + test).float()
    assert torch.all((test.float() - expected).abs() <= 0.5 + 1e-6)


def test_digits_split_fixed_by_seed_and_recorded():
    a, b, c = (load_dataset("digits", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.split == b.split
    assert a.split["train_hash"] != c.split["train_hash"]
    assert not torch.equal(a.y_train, c.y_train)
    assert json.loads(json.dumps(a.split)) == a.split
    assert {"seed", "test_fraction", "n_train", "n_test", "train_hash"} <= set(a.split)
    assert (a.split["seed"], a.split["n_train"], a.split["n_test"]) == (0, 1347, 450)


def test_split_hash_changes_with_test_fraction():
    a = load_dataset("digits", test_fraction=0.25)
    b = load_dataset("digits", test_fraction=0.3)
    assert a.split["train_hash"] != b.split["train_hash"]
    with pytest.raises(ValueError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.0)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="digits.*shapes"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="did you mean 'digits'"):
        load_dataset("digit")
    with pytest.raises(ValueError, match="unknown option 'n'"):
        load_dataset("digits", n=10)


def test_dataset_validates_its_tensors():
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(ValueError, match="y_train"):
        ImageDataset("bad", x, torch.zeros(3, dtype=torch.int64), x, None)
    with pytest.raises(ValueError, match="x_test"):
        ImageDataset("bad", x, None, x.double(), None)


# ----------------------------------------------------------------------------- npz


def test_npz_round_trip_uint8_with_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 6, 5), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    ds = load_dataset(str(tmp_path / "mine.npz"), seed=1)
    assert ds.name == "mine"
    assert ds.x_train.shape[1:] == (1, 6, 5) and ds.image_size == 6
    assert (ds.split["n_train"], ds.split["n_test"]) == (32, 8)
    assert torch.equal(torch.bincount(ds.y_test), torch.full((4,), 2))
    # Every loaded image is the source image scaled to [0, 1], with its own label.
    source = {x[i].tobytes(): y[i] for i in range(len(x))}
    for image, label in zip(ds.x_train, ds.y_train, strict=True):
        key = np.round(image[0].numpy() * 255).astype(np.uint8).tobytes()
        assert source[key] == label


def test_npz_float_colour_without_labels_and_factors(tmp_path):
    x = np.random.default_rng(1).random((20, 4, 4, 3)).astype(np.float32)
    factors = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.savez(tmp_path / "c.npz", x=x, factors=factors, factor_names=np.array(["a", "b"]))
    ds = load_dataset(str(tmp_path / "c.npz"))
    assert ds.in_channels == 3 and ds.y_train is None and ds.num_classes is None
    assert ds.factor_names == ("a", "b")
    assert ds.split["stratified"] is False
    together = torch.cat([ds.x_train, ds.x_test]).permute(0, 2, 3, 1)
    assert torch.allclose(together.sum(0), torch.from_numpy(x).sum(0), atol=1e-5)


@pytest.mark.parametrize(
    ("arrays", "key", "fix"),
    [
        ({"pixels": np.zeros((4, 3, 3))}, "no image key", "x, X, images"),
        ({"x": np.zeros((4, 3, 3, 3, 3))}, "'x'", "save images as"),
        ({"x": np.zeros((4, 3, 3)), "y": np.zeros(5, dtype=int)}, "'y'", "one integer label"),
        ({"X": np.zeros((4, 3, 3)), "labels": np.full(4, 0.5)}, "'labels'", "integer class"),
        ({"x": np.full((4, 3, 3), np.nan)}, "'x'", "replace them"),
        ({"images": np.full((4, 3, 3), 2.0)}, "'images'", "nothing to learn"),
        ({"x": np.zeros((4, 3, 3)), "X": np.zeros((4, 3, 3))}, "'x', 'X'", "keep one"),
        ({"x": np.zeros((4, 3, 8, 3))}, "'x'", "transpose"),
        ({"x": np.array([["a", "b"]] * 4)}, "'x'", "uint8 or float"),
    ],
)
def test_npz_errors_are_one_line_naming_file_key_and_fix(tmp_path, arrays, key, fix):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as err:
        load_dataset(str(path))
    text = str(err.value)
    assert "\n" not in text and str(path) in text and key in text and fix in text, text


@pytest.mark.parametrize(("x_key", "y_key"), [("x", "y"), ("X", "Y"), ("images", "labels")])
def test_npz_keys_are_found_under_every_spelling(tmp_path, x_key, y_key):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (20, 5, 5), dtype=np.uint8), np.arange(20) % 2
    np.savez(tmp_path / "k.npz", **{x_key: x, y_key: y})
    ds = load_dataset(str(tmp_path / "k.npz"))
    assert ds.num_classes == 2 and ds.sample_shape == (1, 5, 5) and ds.scaling is None
    assert torch.equal(torch.cat([ds.y_train, ds.y_test]).sort().values, torch.tensor(sorted(y)))


def test_float_pixels_in_any_range_are_scaled_min_max_per_dataset(tmp_path):
    from sklearn.datasets import load_digits

    bunch = load_digits()  # float pixels in 0..16, as a user would save them
    np.savez(tmp_path / "d.npz", x=bunch.images, y=bunch.target)
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.scaling == {"method": "min-max", "min": 0.0, "max": 16.0}
    assert torch.allclose(ds.x_train, load_dataset("digits").x_train)
    shifted = np.random.default_rng(0).normal(-3.0, 2.0, (30, 4, 4))
    np.savez(tmp_path / "s.npz", x=shifted)
    ds = load_dataset(str(tmp_path / "s.npz"))
    together = torch.cat([ds.x_train, ds.x_test])
    assert together.min() == 0 and together.max() == 1
    assert ds.scaling["min"] == pytest.approx(shifted.min())
    assert ds.scaling["max"] == pytest.approx(shifted.max())


def test_channel_first_pytorch_layout_is_read_as_nchw(tmp_path):
    x = np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "t.npz", x=x, y=np.arange(12) % 3)
    ds = load_dataset(str(tmp_path / "t.npz"))
    assert ds.sample_shape == (1, 8, 8) and ds.image_size == 8
    rgb = np.random.default_rng(0).random((12, 3, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "c.npz", x=rgb)
    ds = load_dataset(str(tmp_path / "c.npz"))
    assert ds.sample_shape == (3, 6, 6)
    together = torch.cat([ds.x_train, ds.x_test])
    assert torch.allclose(together.sum(0), torch.from_numpy(rgb).sum(0), atol=1e-5)


def test_vectors_load_as_vectors_and_only_the_mlp_backbone_takes_them(tmp_path):
    v = np.random.default_rng(0).normal(size=(40, 10))
    np.savez(tmp_path / "v.npz", x=v, y=np.arange(40) % 2)
    ds = load_dataset(str(tmp_path / "v.npz"))
    assert ds.vectors and ds.sample_shape == (10,) and ds.scaling["method"] == "min-max"
    ds.check_backbone("mlp")
    for backbone in ("cnn", "vit"):
        with pytest.raises(DataError, match="use the mlp backbone"):
            ds.check_backbone(backbone)
    views = default_augment(ds, n_local=2)(ds.x_train[:4], torch.Generator().manual_seed(0))
    assert [tuple(t.shape) for t in views] == [(4, 10, 1, 1)] * 4
    assert not torch.equal(views[0], views[1])  # the views differ: there is something to learn
    assert not load_dataset("digits").vectors


# ----------------------------------------------------------------------------- folders


def _write_images(root, sizes_per_class, mode="L", seed=0):
    rng = np.random.default_rng(seed)
    written = {}
    for cls, sizes in sizes_per_class.items():
        (root / cls).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            shape = (h, w) if mode == "L" else (h, w, 3)
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / cls / f"{i}.png")
            written[pixels.tobytes()] = cls
    return written


def test_folder_round_trip_grayscale(tmp_path):
    written = _write_images(tmp_path / "data", {"cat": [(6, 6)] * 8, "dog": [(6, 6)] * 8})
    ds = load_dataset(str(tmp_path / "data"), test_fraction=0.25)
    assert ds.name == "data" and ds.class_names == ("cat", "dog")
    assert ds.x_train.shape == (12, 1, 6, 6) and ds.x_test.shape == (4, 1, 6, 6)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        for image, label in zip(x, y, strict=True):
            key = np.round(image[0].numpy() * 255).astype(np.uint8).tobytes()
            assert written[key] == ds.class_names[label]


def test_folder_any_colour_image_makes_all_rgb(tmp_path):
    root = tmp_path / "mixed"
    _write_images(root, {"a": [(5, 5)] * 3})
    _write_images(root, {"b": [(5, 5)] * 3}, mode="RGB", seed=1)
    ds = load_dataset(str(root))
    assert ds.in_channels == 3
    gray = torch.cat([ds.x_train, ds.x_test])
    gray = gray[torch.cat([ds.y_train, ds.y_test]) == 0]
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])


def test_folder_16_bit_grayscale_keeps_precision(tmp_path):
    pixels = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000).astype(np.uint16)
    for cls in ("a", "b"):
        (tmp_path / "deep" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(pixels).save(tmp_path / "deep" / cls / f"{i}.png")
    ds = load_dataset(str(tmp_path / "deep"))
    expected = torch.from_numpy(pixels.astype(np.float32) / 65535)
    assert ds.in_channels == 1
    assert torch.allclose(ds.x_train[0, 0], expected, atol=1e-6)


def test_folder_errors_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_dataset(str(tmp_path / "empty"))
    (tmp_path / "one" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="'a' holds no images"):
        load_dataset(str(tmp_path / "one"))


def test_folder_mixed_sizes_refused_then_resized(tmp_path):
    root = tmp_path / "sizes"
    _write_images(root, {"a": [(6, 6), (6, 6), (6, 6)], "b": [(8, 10), (6, 6), (6, 6)]})
    with pytest.raises(ValueError, match=r"6x6: 5, 8x10: 1.*resize"):
        load_dataset(str(root))
    ds = load_dataset(str(root), resize=(7, 7))
    assert ds.x_train.shape[1:] == (1, 7, 7)
    assert load_dataset(str(root), resize=4).image_size == 4


def test_folder_unreadable_files_all_listed(tmp_path):
    root = tmp_path / "broken"
    _write_images(root, {"a": [(4, 4)] * 4, "b": [(4, 4)] * 4})
    (root / "a" / "junk.png").write_bytes(b"not an image")
    (root / "b" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="2 unreadable") as info:
        load_dataset(str(root))
    assert "junk.png" in str(info.value) and "notes.txt" in str(info.value)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- augment

IDENTITY = {
    "global_scale": (1.0, 1.0),
    "ratio": (1.0, 1.0),
    "flip": False,
    "jitter_prob": 0.0,
    "blur_prob": 0.0,
    "noise_std": 0.0,
}


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_augment_views_shapes_and_range():
    aug = MultiCropAugment(n_global=2, n_local=3, blur_prob=0.5, noise_std=0.1)
    x = torch.rand(7, 3, 12, 10)
    views = aug(x, _gen(0))
    assert [tuple(v.shape) for v in views] == [(7, 3, 12, 12)] * 2 + [(7, 3, 6, 6)] * 3
    assert all(v.min() >= 0 and v.max() <= 1 for v in views)
    sized = MultiCropAugment(global_size=9, local_size=5, n_local=1)(x, _gen(0))
    assert [tuple(v.shape) for v in sized] == [(7, 3, 9, 9)] * 2 + [(7, 3, 5, 5)]


def test_augment_deterministic_given_seed():
    aug = MultiCropAugment(n_local=2, blur_prob=0.5, noise_std=0.05)
    x = torch.rand(16, 1, 8, 8)
    a, b, c = aug(x, _gen(1)), aug(x, _gen(1)), aug(x, _gen(2))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert all(not torch.equal(u, v) for u, v in zip(a, c, strict=True))
    assert not torch.equal(a[0], a[1])  # two global views of one batch differ


def test_augment_identity_when_everything_off():
    x = torch.rand(9, 2, 8, 8)
    views = MultiCropAugment(**IDENTITY, n_global=2)(x, _gen(0))
    for view in views:
        assert torch.allclose(view, x, atol=1e-5)


def test_augment_forced_flip_flips_every_sample():
    x = torch.rand(9, 1, 8, 8)
    options = {**IDENTITY, "flip": True, "flip_prob": 1.0}
    (view,) = MultiCropAugment(**options, n_global=1)(x, _gen(0))
    assert torch.allclose(view, x.flip(-1), atol=1e-5)
    # With the flip flag off nothing flips, whatever flip_prob says.
    (view,) = MultiCropAugment(**{**options, "flip": False}, n_global=1)(x, _gen(0))
    assert torch.allclose(view, x, atol=1e-5)


def test_augment_flip_is_per_sample():
    x = torch.rand(200, 1, 4, 4)
    options = {**IDENTITY, "flip": True, "flip_prob": 0.5}
    (view,) = MultiCropAugment(**options, n_global=1)(x, _gen(0))
    flipped = (view - x.flip(-1)).flatten(1).abs().amax(1) < 1e-5
    kept = (view - x).flatten(1).abs().amax(1) < 1e-5
    assert torch.all(flipped ^ kept)
    assert 50 < int(flipped.sum()) < 150


def test_augment_crops_zoom_in():
    # A crop of a quarter of the area shows a region, not the whole image.
    x = torch.linspace(0, 1, 16).repeat(16, 1)[None, None].expand(32, 1, 16, 16)
    options = {**IDENTITY, "global_scale": (0.25, 0.25)}
    (view,) = MultiCropAugment(**options, n_global=1)(x, _gen(0))
    span = view[:, 0, 0, -1] - view[:, 0, 0, 0]
    assert torch.allclose(span, torch.full((32,), 0.5), atol=1e-4)


def test_augment_jitter_blur_noise_change_values():
    x = torch.rand(8, 1, 8, 8) * 0.5 + 0.25
    for option in ({"jitter_prob": 1.0}, {"blur_prob": 1.0}, {"noise_std": 0.1}):
        (view,) = MultiCropAugment(**{**IDENTITY, **option}, n_global=1)(x, _gen(0))
        assert (view - x).abs().max() > 1e-2, option
    blurred = MultiCropAugment(**{**IDENTITY, "blur_prob": 1.0}, n_global=1)(x, _gen(0))[0]
    assert blurred.std() < x.std()  # blur smooths
    assert torch.allclose(blurred.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.05)


def test_augment_validates_input():
    aug = MultiCropAugment()
    with pytest.raises(ValueError, match="B, C, H, W"):
        aug(torch.rand(8, 8), _gen(0))
    with pytest.raises(ValueError, match="floating"):
        aug(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), _gen(0))
    with pytest.raises(ValueError, match="empty"):
        aug(torch.rand(0, 1, 8, 8), _gen(0))
    with pytest.raises(ValueError, match="Generator"):
        aug(torch.rand(2, 1, 8, 8), 0)
    with pytest.raises(ValueError, match="global_scale"):
        MultiCropAugment(global_scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="n_global"):
        MultiCropAugment(n_global=0)


def test_default_augment_per_dataset():
    digits = default_augment(load_dataset("digits"), n_local=2)
    assert (digits.global_size, digits.local_size, digits.flip, digits.n_local) == (8, 4, False, 2)
    shapes = default_augment(load_dataset("shapes", n=40, size=32))
    assert (shapes.global_size, shapes.local_size, shapes.flip) == (32, 16, True)


def test_sources_table_carries_each_default_augmentation():
    import dataclasses

    from sslobjectives.data import DATASET_NAMES, SOURCES, MultiCropAugment

    assert DATASET_NAMES == tuple(SOURCES) == ("digits", "shapes", "shapes-hard", "shapes-colour")
    # the settings default_augment chose by name before the table, written out again
    old = {
        "digits": dict(
            global_scale=(0.5, 1.0),
            local_scale=(0.2, 0.5),
            flip=False,
            brightness=0.3,
            contrast=0.3,
            blur_prob=0.2,
            blur_sigma=(0.1, 0.6),
            noise_std=0.02,
        ),
        "shapes": dict(
            global_scale=(0.4, 1.0),
            local_scale=(0.1, 0.4),
            flip=True,
            blur_prob=0.5,
            blur_sigma=(0.1, 1.5),
            noise_std=0.02,
        ),
    }
    for name, kw in old.items():
        ds = load_dataset(name, **({"n": 40, "size": 16} if name == "shapes" else {}))
        expected = MultiCropAugment(
            global_size=ds.image_size, local_size=max(2, ds.image_size // 2), n_local=2, **kw
        )
        got = default_augment(ds, n_local=2)
        assert all(getattr(got, k) == v for k, v in SOURCES[name].augment.items())
        assert dataclasses.asdict(got) == dataclasses.asdict(expected)


def _centroid(img):
    """Intensity-weighted centre of (B, 1, H, W) images in [-1, 1] coordinates."""
    h, w = img.shape[-2:]
    ys = torch.linspace(-1, 1, h)[:, None].expand(h, w)
    xs = torch.linspace(-1, 1, w)[None, :].expand(h, w)
    mass = img[:, 0].sum((1, 2))
    return (img[:, 0] * xs).sum((1, 2)) / mass, (img[:, 0] * ys).sum((1, 2)) / mass


def test_augment_rotation_turns_about_the_centre():
    # An off-centre blob: rotation keeps its distance from the centre and its mass, and
    # moves it to a different angle per sample, spread over the allowed range.
    x = torch.zeros(64, 1, 33, 33)
    x[:, :, 15:18, 25:28] = 1.0  # centre at (0.625, 0) in [-1, 1] coordinates
    (view,) = MultiCropAugment(**{**IDENTITY, "rotation": 180.0}, n_global=1)(x, _gen(0))
    cx, cy = _centroid(view)
    assert torch.allclose(torch.hypot(cx, cy), torch.full((64,), 0.625), atol=0.03)
    assert torch.allclose(view.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.05)
    angles = torch.rad2deg(torch.atan2(cy, cx))
    assert angles.min() < -120 and angles.max() > 120  # uses the whole +-180 range
    (small,) = MultiCropAugment(**{**IDENTITY, "rotation": 20.0}, n_global=1)(x, _gen(0))
    cx, cy = _centroid(small)
    assert torch.rad2deg(torch.atan2(cy, cx)).abs().max() < 21


def test_augment_rotation_off_leaves_views_unchanged():
    # rotation = 0 draws nothing: every view of an existing config is exactly as before.
    # The sums are those of the views made by the code before the rotation field existed.
    x = torch.rand(16, 1, 8, 8, generator=_gen(7))
    options = {"n_local": 2, "blur_prob": 0.5, "noise_std": 0.05}
    before = MultiCropAugment(**options)(x, _gen(3))
    assert [float(v.sum()) for v in before] == pytest.approx(
        [505.898, 514.179, 120.472, 120.475], abs=2e-3
    )
    rotated = MultiCropAugment(**options, rotation=90.0)(x, _gen(3))
    assert not torch.equal(before[0], rotated[0])
    with pytest.raises(ValueError, match="rotation"):
        MultiCropAugment(rotation=-1.0)
    with pytest.raises(ValueError, match="rotation"):
        MultiCropAugment(rotation=200.0)


_YIQ = torch.tensor(
    [(0.299, 0.587, 0.114), (0.595716, -0.274453, -0.321263), (0.211456, -0.522591, 0.311135)]
)


def _yiq(x):
    """(B, 3, H, W) RGB -> (B, 3, H, W) YIQ."""
    return torch.einsum("ij,bjhw->bihw", _YIQ, x)


def test_colour_jitter_keeps_luma_turns_hue_and_scales_saturation():
    # Mid-range colours, so that no clamp interferes: hue and saturation change the chroma
    # (I, Q) of each view and never its luma; hue turns the chroma plane (same length), by an
    # angle drawn per sample over the whole circle; saturation scales it.
    x = 0.4 + 0.2 * torch.rand(64, 3, 4, 4, generator=_gen(0))
    on = {**IDENTITY, "jitter_prob": 1.0, "brightness": 0.0, "contrast": 0.0}
    (hued,) = MultiCropAugment(**on, hue=0.5, n_global=1)(x, _gen(1))
    (satd,) = MultiCropAugment(**on, saturation=0.5, n_global=1)(x, _gen(1))
    y0, y1, y2 = _yiq(x), _yiq(hued), _yiq(satd)
    for y in (y1, y2):
        assert torch.allclose(y[:, 0], y0[:, 0], atol=1e-5)

    def chroma(y):
        return torch.hypot(y[:, 1], y[:, 2])

    assert torch.allclose(chroma(y1), chroma(y0), atol=1e-5)
    turn = torch.atan2(y1[:, 2], y1[:, 1]) - torch.atan2(y0[:, 2], y0[:, 1])
    turn = torch.remainder(turn + math.pi, 2 * math.pi) - math.pi  # (-pi, pi]
    per_sample = turn[:, 0, 0]
    assert torch.allclose(turn, per_sample[:, None, None], atol=1e-3)  # one turn per image
    assert per_sample.min() < -2.5 and per_sample.max() > 2.5  # spread over the circle
    ratio = chroma(y2) / chroma(y0)
    assert torch.allclose(ratio, ratio[:, :1, :1], atol=1e-3)  # one factor per image
    assert 0.5 - 1e-4 <= float(ratio.min()) and float(ratio.max()) <= 1.5 + 1e-4
    assert float(ratio.max() - ratio.min()) > 0.5
    # a gray pixel stays gray whatever the hue
    gray = torch.full((8, 3, 2, 2), 0.5)
    (view,) = MultiCropAugment(**on, hue=0.5, n_global=1)(gray, _gen(2))
    assert torch.allclose(view, gray, atol=1e-5)


def test_grayscale_views_are_their_luma_in_every_channel():
    x = torch.rand(32, 3, 6, 6, generator=_gen(3))
    (view,) = MultiCropAugment(**IDENTITY, grayscale_prob=1.0, n_global=1)(x, _gen(0))
    luma = _yiq(x)[:, :1]
    assert torch.allclose(view, luma.expand_as(view), atol=1e-5)
    (some,) = MultiCropAugment(**IDENTITY, grayscale_prob=0.5, n_global=1)(x, _gen(0))
    is_gray = (some - luma).abs().amax((1, 2, 3)) < 1e-5
    assert 0 < int(is_gray.sum()) < 32  # per sample
    assert torch.allclose(some[~is_gray], x[~is_gray], atol=1e-5)


def test_colour_settings_are_off_by_default_and_refuse_gray_images():
    # off (the default) draws nothing: the views of every existing config are unchanged
    x = torch.rand(16, 3, 8, 8, generator=_gen(7))
    options = {"n_local": 2, "blur_prob": 0.5, "noise_std": 0.05}
    before = MultiCropAugment(**options)(x, _gen(3))
    same = MultiCropAugment(**options, saturation=0.0, hue=0.0, grayscale_prob=0.0)(x, _gen(3))
    assert all(torch.equal(a, b) for a, b in zip(before, same, strict=True))
    coloured = MultiCropAugment(**options, hue=0.1)(x, _gen(3))
    assert not torch.equal(before[0], coloured[0])
    assert MultiCropAugment(**options, hue=0.1)(x, _gen(3))[0].equal(coloured[0])  # seeded
    for bad in ({"hue": 0.6}, {"hue": -0.1}, {"saturation": 1.5}, {"grayscale_prob": 2.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MultiCropAugment(**bad)
    with pytest.raises(ValueError, match="need RGB images.*got 1 channel"):
        MultiCropAugment(grayscale_prob=0.2)(torch.rand(2, 1, 8, 8), _gen(0))


def test_shapes_hard_widens_the_nuisances_and_rotates_its_views():
    from sslobjectives.data import SHAPES_HARD_OPTIONS, SOURCES

    ds = load_dataset("shapes-hard", n=200)
    assert ds.name == ds.source == "shapes-hard" and ds.image_size == 16
    factors = dict(zip(ds.factor_names, ds.factors_train.T, strict=True))
    assert float(factors["rotation"].max()) > 3 * math.pi / 2  # more than a quarter turn
    assert float(factors["pos_x"].abs().max()) > 0.4
    assert float(factors["intensity"].min()) < 0.4
    assert SOURCES["shapes-hard"].options is SHAPES_HARD_OPTIONS  # the options are data
    small = load_dataset("shapes-hard", n=40, size=8)  # options still override
    assert small.image_size == 8
    aug = default_augment(ds)
    assert (aug.rotation, aug.blur_prob, aug.global_size) == (180.0, 0.0, 16)
    assert SOURCES["shapes-hard"].augment["rotation"] == 180.0
    # plain shapes keep their augmentation (no rotation: every earlier run is unchanged)
    assert default_augment(load_dataset("shapes", n=40, size=32)).rotation == 0.0
    with pytest.raises(ValueError, match="unknown option 'nn'.*shapes-hard"):
        load_dataset("shapes-hard", nn=10)


def test_shapes_colour_is_shapes_hard_white_on_a_background_of_random_hue():
    from sslobjectives.data import SOURCES
    from sslobjectives.data.shapes import BACKGROUND_CHROMA, BACKGROUND_LUMA

    ds = load_dataset("shapes-colour", n=300)
    assert ds.name == ds.source == "shapes-colour" and ds.in_channels == 3
    assert ds.factor_names[-2:] == ("hue", "shape")
    # the geometry is shapes-hard's (white shapes, intensity 1) of the same seed
    options = {**SOURCES["shapes-colour"].options, "n": 300}
    gray, y, factors, _ = make_shapes(seed=0, **options)
    x, yc, fc, _ = make_shapes(seed=0, colour=True, **options)
    assert torch.equal(y, yc) and torch.equal(factors[:, :6], fc[:, :6])
    assert float(fc[:, 4].min()) == 1.0  # intensity fixed: the colour carries the contrast
    # background pixels (gray 0) are the hue's colour: luma 0.35, chroma 0.25 (unless clamped)
    bg = x[:, :, 0, 0]  # corners are background
    assert bool((gray[:, 0, 0, 0] == 0).all())
    yiq = bg @ _YIQ.T
    unclamped = ((bg > 0) & (bg < 1)).all(1)
    assert int(unclamped.sum()) > 200
    luma = yiq[unclamped, 0]
    assert torch.allclose(luma, torch.full_like(luma, BACKGROUND_LUMA), atol=1e-4)
    chroma = torch.hypot(yiq[unclamped, 1], yiq[unclamped, 2])
    assert torch.allclose(chroma, torch.full_like(chroma, BACKGROUND_CHROMA), atol=1e-4)
    hue = torch.atan2(yiq[unclamped, 2], yiq[unclamped, 1]) % (2 * math.pi)
    assert torch.allclose(hue, fc[unclamped, 6], atol=1e-3)  # the factor is the hue drawn
    # shape pixels (gray 1) are white
    inside = gray[:, 0] == 1
    assert torch.allclose(x.permute(0, 2, 3, 1)[inside], torch.ones(1, 3), atol=1e-6)
    # its views jitter the colour the way SimCLR's do, and rotate like shapes-hard's
    aug = default_augment(ds)
    assert (aug.hue, aug.saturation, aug.grayscale_prob, aug.rotation) == (0.5, 0.8, 0.2, 180.0)
    with pytest.raises(ValueError, match="unknown option 'colour'.*shapes-colour"):
        load_dataset("shapes-colour", colour=False)
