"""Evaluation metrics, each against small cases whose expected values are worked out by hand."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from sslobjectives.eval import (
    assignment_factor_mutual_information,
    bit_factor_mutual_information,
    bits_reused_across_classes,
    discretize_factors,
    evaluate_representation,
    knn_accuracy,
    linear_probe,
    retrieval_map,
)


def unit(cos: float, sign: float = 1.0) -> list[float]:
    """2-D unit vector with cosine ``cos`` to the query ``(1, 0)``."""
    return [cos, sign * math.sqrt(1 - cos**2)]


# ----------------------------------------------------------------------------- weighted k-NN

# Query (1, 0); neighbours with cosines 0.9 (class 0), 0.5 and 0.4 (class 1).
KNN_TRAIN = [unit(0.9), unit(0.5), unit(0.4, -1.0)]
KNN_LABELS = [0, 1, 1]
QUERY = [[1.0, 0.0]]


def test_knn_k1_nearest_neighbour_decides():
    # the nearest neighbour (cos 0.9) has class 0
    assert knn_accuracy(KNN_TRAIN, KNN_LABELS, QUERY, [0], k=1) == 1.0
    assert knn_accuracy(KNN_TRAIN, KNN_LABELS, QUERY, [1], k=1) == 0.0


def test_knn_k3_weighting_changes_the_winner():
    # T = 0.07: class 0 gets exp(0.9/0.07) = exp(12.86) ~ 3.8e5, class 1 gets
    # exp(0.5/0.07) + exp(0.4/0.07) = exp(7.14) + exp(5.71) ~ 1.6e3 -> class 0 wins.
    assert knn_accuracy(KNN_TRAIN, KNN_LABELS, QUERY, [0], k=3, temperature=0.07) == 1.0
    # T = 10 (almost a plain majority vote): class 0 gets exp(0.09) = 1.094, class 1 gets
    # exp(0.05) + exp(0.04) = 1.051 + 1.041 = 2.092 -> class 1 wins.
    assert knn_accuracy(KNN_TRAIN, KNN_LABELS, QUERY, [1], k=3, temperature=10.0) == 1.0
    # two test rows, one right one wrong -> 0.5
    assert knn_accuracy(KNN_TRAIN, KNN_LABELS, QUERY * 2, [0, 1], k=3) == 0.5


def test_knn_k_larger_than_n_is_clamped_and_tiny_temperature_does_not_overflow():
    assert knn_accuracy(KNN_TRAIN, KNN_LABELS, QUERY, [0], k=100) == 1.0
    assert knn_accuracy(KNN_TRAIN, KNN_LABELS, QUERY, [0], k=3, temperature=1e-4) == 1.0


def test_knn_uses_cosine_not_euclidean_and_any_integer_labels():
    # (10, 0) is far in Euclidean distance but has cosine 1 with the query.
    train = [[10.0, 0.0], [0.9, 0.5]]
    assert knn_accuracy(train, [7, -3], [[1.0, 0.01]], [7], k=1) == 1.0


def test_knn_ties_are_deterministic():
    # two identical neighbours: k=1 takes the lower training index
    train = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    assert knn_accuracy(train, [1, 0, 0], QUERY, [1], k=1) == 1.0
    # k=2: one vote each of equal weight -> the smaller label wins
    assert knn_accuracy(train, [1, 0, 0], QUERY, [0], k=2) == 1.0


@pytest.mark.parametrize("levels", [None, 3, 12])
def test_top_k_stable_is_the_full_stable_sorts_head(levels):
    # the k-NN's topk shortcut against the stable sort it replaces, with ties everywhere
    # (values rounded to a few levels) and none (continuous values)
    from sslobjectives.eval.metrics import _top_k_stable

    g = torch.Generator().manual_seed(levels or 0)
    for n, k in ((200, 20), (200, 1), (60, 20), (400, 7)):
        sim = torch.rand(37, n, generator=g)
        if levels is not None:
            sim = (sim * levels).floor() / levels
        top, idx = _top_k_stable(sim, k)
        want_top, want_idx = torch.sort(sim, dim=1, descending=True, stable=True)
        assert torch.equal(top, want_top[:, :k]) and torch.equal(idx, want_idx[:, :k])


def test_knn_chunked_equals_unchunked_and_torch_equals_numpy():
    g = torch.Generator().manual_seed(0)
    xtr, xte = torch.randn(50, 6, generator=g), torch.randn(23, 6, generator=g)
    ytr, yte = torch.randint(3, (50,), generator=g), torch.randint(3, (23,), generator=g)
    full = knn_accuracy(xtr, ytr, xte, yte, k=5)
    assert knn_accuracy(xtr, ytr, xte, yte, k=5, chunk_size=4) == full
    assert knn_accuracy(xtr.numpy(), ytr.numpy(), xte.numpy(), yte.numpy(), k=5) == full
    assert knn_accuracy(xtr, ytr, xte, yte, k=5, num_classes=3) == full


# ----------------------------------------------------------------------------- linear probe


def test_linear_probe_separable_data_is_perfect():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    centres = np.array([[8.0, 0, 0, 0], [0, 8.0, 0, 0], [0, 0, 8.0, 0]])
    x = centres[y] + rng.normal(size=(120, 4))
    assert linear_probe(x[::2], y[::2], x[1::2], y[1::2]) == 1.0


def test_linear_probe_random_labels_near_chance_and_deterministic():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(800, 20))
    y = rng.integers(0, 2, 800)
    acc = linear_probe(x[:400], y[:400], x[400:], y[400:])
    assert 0.4 < acc < 0.6  # chance 0.5, std of the accuracy ~ 0.025
    assert linear_probe(x[:400], y[:400], x[400:], y[400:], seed=5) == acc


def test_linear_probe_is_invariant_to_feature_scaling():
    # train-set standardisation makes the protocol invariant to per-feature affine maps
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(int)
    scaled = x * np.array([1e3, 1e-3, 1.0, 50.0, 2.0]) + 7.0
    assert linear_probe(x[:100], y[:100], x[100:], y[100:]) == pytest.approx(
        linear_probe(scaled[:100], y[:100], scaled[100:], y[100:])
    )


def test_linear_probe_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe([[0.0], [1.0]], [3, 3], [[0.5]], [3])


# ----------------------------------------------------------------------------- retrieval mAP

# Query (1, 0); database at cosines 1.0, 0.8, 0.6, 0.0, i.e. ranks 1, 2, 3, 4.
DB = [[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]]
# Hamming database for the query code [0, 0]: distances 0, 1, 1, 2.
CODES_DB = [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_map_hand_worked_ranking():
    # relevant at ranks 1 and 3: AP = (1/1 + 2/3) / 2 = 5/6
    assert retrieval_map(QUERY, [0], DB, [0, 1, 0, 1]) == pytest.approx(5 / 6)
    # relevant only at rank 4: AP = 1/4
    assert retrieval_map(QUERY, [0], DB, [1, 1, 1, 0]) == pytest.approx(1 / 4)
    # relevant at ranks 2 and 4: (1/2 + 2/4) / 2 = 1/2
    assert retrieval_map(QUERY, [0], DB, [1, 0, 1, 0]) == pytest.approx(1 / 2)


def test_map_is_mean_over_queries_and_skips_queries_without_relevant_items():
    queries = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    # query 1 ranks DB items as 3, 2, 1, 0 (cosines 1, 0.8, 0.6, 0): its only relevant item
    # (index 1) is at rank 3 -> AP 1/3; query 0: 5/6 as above; query 2 has label 9, absent
    # from the database -> skipped. mAP = (5/6 + 1/3) / 2 = 7/12.
    labels = [0, 1, 9]
    assert retrieval_map(queries, labels, DB, [0, 1, 0, 2]) == pytest.approx(7 / 12)
    with pytest.raises(ValueError, match="no query has a relevant"):
        retrieval_map(QUERY, [5], DB, [0, 1, 0, 1])


def test_map_perfect_retrieval_is_one():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 5)
    feats = np.eye(3)[y] + 0.01 * rng.random((15, 3))
    assert retrieval_map(feats, y, feats[::-1], y[::-1]) == pytest.approx(1.0)
    codes = np.eye(3, dtype=int)[y]
    assert retrieval_map(codes, y, codes, y, metric="hamming") == 1.0


def test_map_hamming_ties_average_over_orderings():
    # distances 0, 1, 1, 2; relevant: item 0 and one of the tied items 1, 2.
    # Tie order "relevant first" -> ranks 1, 2 -> AP 1; "irrelevant first" -> ranks 1, 3
    # -> AP 5/6. Tie-aware AP is the mean: (1 + 5/6) / 2 = 11/12, whichever item it is.
    for labels in ([0, 0, 1, 1], [0, 1, 0, 1]):
        assert retrieval_map([[0, 0]], [0], CODES_DB, labels, "hamming") == pytest.approx(11 / 12)
    # ties="index": the lower database index comes first
    assert retrieval_map([[0, 0]], [0], CODES_DB, [0, 0, 1, 1], "hamming", ties="index") == 1.0
    assert retrieval_map(
        [[0, 0]], [0], CODES_DB, [0, 1, 0, 1], "hamming", ties="index"
    ) == pytest.approx(5 / 6)


def test_map_three_way_tie_with_two_relevant():
    # all three items at distance 1, two relevant. The irrelevant one is at rank 1, 2 or 3
    # with equal chance: APs (1/2 + 2/3)/2 = 7/12, (1 + 2/3)/2 = 5/6, (1 + 1)/2 = 1;
    # mean (7/12 + 10/12 + 12/12) / 3 = 29/36.
    codes = [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    got = retrieval_map([[0, 0, 0]], [0], codes, [0, 1, 0], "hamming")
    assert got == pytest.approx(29 / 36)


def test_map_tie_aware_matches_enumeration_of_all_tie_orders():
    rng = np.random.default_rng(3)
    for _ in range(5):
        dist = rng.integers(0, 3, 6).astype(float)
        rel = rng.integers(0, 2, 6)
        rel[0] = 1
        aps = []
        for perm in itertools.permutations(range(6)):
            order = sorted(perm, key=lambda i: dist[i])  # stable: ties keep `perm` order
            hits = np.cumsum(rel[order])
            aps.append(np.sum(rel[order] * hits / np.arange(1, 7)) / rel.sum())
        # cosine with the query (1, 0): db vectors at angles that reproduce the distances
        db = [[math.cos(d / 3), math.sin(d / 3)] for d in dist]
        labels = np.where(rel == 1, 0, 1)
        got = retrieval_map(QUERY, [0], np.array(db, dtype=np.float64), labels)
        assert got == pytest.approx(np.mean(aps))


def test_map_chunked_equals_unchunked_and_average_ignores_db_order():
    g = torch.Generator().manual_seed(0)
    codes = (torch.rand(40, 8, generator=g) > 0.5).int()
    labels = torch.randint(3, (40,), generator=g)
    full = retrieval_map(codes[:15], labels[:15], codes[15:], labels[15:], "hamming")
    chunked = retrieval_map(
        codes[:15], labels[:15], codes[15:], labels[15:], "hamming", chunk_size=2
    )
    perm = torch.randperm(25, generator=g) + 15
    shuffled = retrieval_map(codes[:15], labels[:15], codes[perm], labels[perm], "hamming")
    assert chunked == pytest.approx(full) and shuffled == pytest.approx(full)


# ----------------------------------------------------------------------------- mutual information


def test_mi_bit_equal_to_binary_factor_is_one_bit_independent_bit_zero():
    factor = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    copy = factor
    indep = np.array([0, 1, 0, 1, 0, 1, 0, 1])  # each factor value sees bit 0 and 1 twice
    res = bit_factor_mutual_information(np.stack([copy, indep], 1), factor[:, None], ["f"])
    assert res.mi.shape == (2, 1)
    assert res.mi[0, 0] == pytest.approx(1.0)
    assert res.mi[1, 0] == pytest.approx(0.0, abs=1e-12)
    assert res.factor_entropy[0] == pytest.approx(1.0) and bool(res.discrete[0])
    # a random bit against a random binary factor: ~0 (plug-in bias ~ 1/(2 N ln 2))
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (4000, 1))
    assert bit_factor_mutual_information(bits, rng.integers(0, 2, (4000, 1))).mi[0, 0] < 0.002


def test_mi_bit_equal_to_top_half_of_four_bin_factor():
    # 8 distinct non-integer values -> continuous, 4 quantile bins of 2 values each
    # (H = 2 bits); "top half" is determined by the bin and splits it 50/50: 1 bit.
    factor = np.arange(8) + 0.25
    bit = (factor > 4).astype(int)
    res = bit_factor_mutual_information(bit[:, None], factor[:, None], ["scale"], n_bins=4)
    assert not bool(res.discrete[0])
    assert res.factor_entropy[0] == pytest.approx(2.0)
    assert res.mi[0, 0] == pytest.approx(1.0)
    assert res.normalized[0, 0] == pytest.approx(0.5)


def test_discretisation_quantile_bins_and_discrete_detection():
    factors = np.stack([np.arange(8) + 0.25, np.arange(8) % 5], axis=1)
    levels, disc = discretize_factors(factors, ["cont", "cls"], n_bins=4)
    assert levels[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert levels[:, 1].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]  # 5 values kept as-is
    assert disc.tolist() == [False, True]
    # forcing everything continuous merges the 5 integer values into 4 bins
    levels, disc = discretize_factors(factors, ["cont", "cls"], n_bins=4, discrete=[])
    assert disc.tolist() == [False, False] and levels[:, 1].max() == 3
    with pytest.raises(ValueError, match="unknown factor"):
        discretize_factors(factors, ["cont", "cls"], discrete=["colour"])


def test_mi_constant_factor_gives_zero_not_nan():
    res = bit_factor_mutual_information([[0], [1], [1]], [[2.0], [2.0], [2.0]])
    assert res.mi[0, 0] == 0.0 and res.normalized[0, 0] == 0.0


def test_assignment_mi():
    factor = (np.arange(8) + 0.25)[:, None]
    bins = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    # clusters = the 4 quantile bins: I = H(factor) = 2 bits, normalised 1
    res = assignment_factor_mutual_information(bins * 10 + 3, factor, ["f"], n_bins=4)
    assert res.mi[0] == pytest.approx(2.0) and res.normalized[0] == pytest.approx(1.0)
    assert float(res.source_entropy) == pytest.approx(2.0)
    # 2 clusters = top/bottom half: 1 bit, normalised 1/2
    res = assignment_factor_mutual_information(bins >= 2, factor, ["f"], n_bins=4)
    assert res.mi[0] == pytest.approx(1.0) and res.normalized[0] == pytest.approx(0.5)
    # clusters independent of the bins (each bin holds clusters 0 and 1 once): 0
    res = assignment_factor_mutual_information(np.arange(8) % 2, factor, ["f"], n_bins=4)
    assert res.mi[0] == pytest.approx(0.0, abs=1e-12)


def test_bits_reused_across_classes_finds_planted_bit():
    rng = np.random.default_rng(0)
    n_per, classes = 120, 3
    y = np.repeat(np.arange(classes), n_per)
    # scale lives in a different range in each class, so a class bit has *global* MI with
    # scale but none within a class
    scale = y + rng.random(y.size)
    pos = rng.random(y.size)
    above = np.zeros(y.size, dtype=int)
    for c in range(classes):
        rows = y == c
        above[rows] = scale[rows] > np.median(scale[rows])
    random_bit = rng.integers(0, 2, y.size)
    class_bit = (y == 2).astype(int)
    one_class_bit = np.where(y == 0, above, rng.integers(0, 2, y.size))
    bits = np.stack([above, random_bit, class_bit, one_class_bit], axis=1)
    factors = np.stack([scale, pos, y], axis=1)
    names = ["scale", "pos", "shape"]

    r = bits_reused_across_classes(bits, y, factors, names)
    assert r["factors"]["scale"] == {"count": 1, "bits": [0], "classes_per_bit": [3]}
    assert r["factors"]["pos"]["count"] == 0
    assert r["skipped_factors"] == ["shape"]  # constant within every class
    assert r["summary"] == {
        "bits_carrying_any": 1,
        "fraction_carrying_any": 0.25,
        "total_count": 1,
    }
    json.dumps(r)
    # the bit that tracks scale in class 0 only counts once one class suffices
    r1 = bits_reused_across_classes(bits, y, factors, names, min_classes=1)
    assert r1["factors"]["scale"]["bits"] == [0, 3]
    assert r1["factors"]["scale"]["classes_per_bit"] == [3, 1]
    # global MI sees the class bit carrying scale (about log2(3) - H(scale bin | class) > 0)
    glob = bit_factor_mutual_information(bits, factors, names)
    assert glob.mi[2, 0] > 0.5


def test_bits_reused_skips_small_classes_and_needs_enough_classes():
    rng = np.random.default_rng(1)
    y = np.array([0] * 40 + [1] * 40 + [2] * 5)
    bits = rng.integers(0, 2, (85, 3))
    r = bits_reused_across_classes(bits, y, rng.random((85, 1)), ["f"])
    assert r["classes"] == [0, 1] and r["skipped_classes"] == [2]
    with pytest.raises(ValueError, match="min_classes=3"):
        bits_reused_across_classes(bits, y, rng.random((85, 1)), ["f"], min_classes=3)


# ------------------------------------------------------------------- evaluate_representation


def test_evaluate_representation_keys_values_and_json():
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    x = np.eye(3)[y] * 3 + rng.normal(size=(120, 3)) * 0.3
    codes = (x > 1.5).astype(int)
    scale = rng.random(120)
    factors = np.stack([scale, y], axis=1)
    codes = np.concatenate([codes, (scale > 0.5)[:, None]], axis=1)
    tr, te = slice(0, 60), slice(60, 120)
    kwargs = dict(factor_names=["scale", "shape"], k=5)
    r = evaluate_representation(
        x[tr],
        y[tr],
        x[te],
        y[te],
        codes_train=codes[tr],
        codes_test=codes[te],
        factors_test=factors[te],
        assign_test=y[te],
        **kwargs,
    )
    json.dumps(r)
    assert r["knn"] == 1.0 and r["linear"] == 1.0 and r["map"] == pytest.approx(1.0)
    # code_knn is cosine k-NN on the +-1 codes
    pm = 2 * codes - 1
    assert r["code_knn"] == knn_accuracy(pm[tr], y[tr], pm[te], y[te], k=5)
    assert 0 < r["code_map"] <= 1
    assert r["code_factor_mi"]["scale"]["best_bit"] == 3
    assert r["code_factor_mi"]["shape"]["discrete"] is True
    assert r["assign_factor_mi"]["shape"]["nmi"] == pytest.approx(1.0)
    assert r["bits_reused"]["factors"]["scale"]["bits"] == [3]
    assert r["bits_reused"]["skipped_factors"] == ["shape"]
    # 10 test samples per class: too few for the within-class analysis, reported not raised
    small = evaluate_representation(
        x[:90],
        y[:90],
        x[90:],
        y[90:],
        codes_train=codes[:90],
        codes_test=codes[90:],
        factors_test=factors[90:],
        **kwargs,
    )
    assert "min_classes=2" in small["bits_reused"]["error"]


def test_evaluate_representation_features_only():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)), np.arange(20) % 2
    r = evaluate_representation(x[:12], y[:12], x[12:], y[12:], k=3)
    assert sorted(r) == ["knn", "linear", "map"]
    assert all(isinstance(v, float) for v in r.values())
    with pytest.raises(ValueError, match="given together"):
        evaluate_representation(x[:12], y[:12], x[12:], y[12:], codes_train=x[:12] > 0)


# ----------------------------------------------------------------------------- validation

X4 = np.zeros((4, 2)) + np.arange(4)[:, None]
Y4 = [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: knn_accuracy(X4, Y4, np.ones((2, 3)), [0, 1]), "dimension mismatch"),
        (lambda: knn_accuracy(X4, [0, 1, 0], X4, Y4), "3 entries but train_feats has 4"),
        (lambda: knn_accuracy(np.ones((0, 2)), [], X4, Y4), "empty"),
        (lambda: knn_accuracy(X4, Y4, [[np.nan, 1.0]], [0]), "non-finite"),
        (lambda: knn_accuracy(X4, None, X4, Y4), "train_labels is missing"),
        (lambda: knn_accuracy(X4, Y4, X4, Y4, k=0), "k must be >= 1"),
        (lambda: knn_accuracy(X4, Y4, X4, Y4, temperature=0.0), "temperature"),
        (lambda: knn_accuracy(X4, Y4, X4, Y4, num_classes=1), "num_classes"),
        (lambda: knn_accuracy(X4, [0.5, 1, 0, 1], X4, Y4), "integer class labels"),
        (lambda: knn_accuracy(np.ones(4), Y4, X4, Y4), "2-D"),
        (lambda: linear_probe(X4, Y4, X4, None), "test_labels is missing"),
        (lambda: retrieval_map(X4, Y4, X4, Y4, metric="l2"), "metric"),
        (lambda: retrieval_map(X4, Y4, X4, Y4, ties="random"), "ties"),
        (lambda: retrieval_map(X4, Y4, X4, Y4, metric="hamming"), "binary codes"),
        (lambda: bit_factor_mutual_information([[0], [2]], [[1.0], [2.0]]), "binary codes"),
        (lambda: bit_factor_mutual_information([[0], [1]], [[1.0]]), "factors has 1 rows"),
        (
            lambda: bit_factor_mutual_information([[0], [1]], [[1.0], [2.0]], ["a", "b"]),
            "2 factor_names",
        ),
        (lambda: bit_factor_mutual_information([[0], [1]], [[1.0], [2.0]], n_bins=1), "n_bins"),
        (lambda: assignment_factor_mutual_information([], [[1.0]]), "non-empty"),
        (lambda: bits_reused_across_classes([[0]] * 4, Y4, X4, threshold=0), "threshold"),
        (lambda: bits_reused_across_classes([[0]] * 4, Y4, X4, alpha=2.0), "alpha"),
    ],
)
def test_validation_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
