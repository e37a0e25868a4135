"""Full-ranking metrics against brute-force sorting, hand-computed cases and batching."""

from __future__ import annotations

import math
import threading
from fractions import Fraction

import numpy as np
import pytest
import torch

from regen_bench.metrics import (
    METRIC_NAMES,
    TIE_POLICIES,
    RankingAccumulator,
    mean_metrics,
    metrics_from_counts,
    rank_counts,
    score_and_count,
)
from regen_bench.metrics.counting import compiled_available, count_rows, numpy_counting
from regen_bench.metrics.ranking import NaNScoresError, harmonic_diff
from regen_bench.metrics.scoring import (
    _count_block_torch,
    _run_workers,
    _scores_provably_finite,
)


def metric_at(rank: int) -> dict[str, float]:
    """Every metric for a known 0-based rank, straight from the definitions."""
    return {
        "recall@1": float(rank < 1),
        "recall@5": float(rank < 5),
        "recall@10": float(rank < 10),
        "ndcg@5": 1 / math.log2(rank + 2) if rank < 5 else 0.0,
        "ndcg@10": 1 / math.log2(rank + 2) if rank < 10 else 0.0,
        "mrr": 1 / (rank + 1),
    }


def brute_force(scores: np.ndarray, targets: np.ndarray, policy: str) -> dict[str, np.ndarray]:
    """Reference by sorting each row. The target is put last / first among its ties with a
    stable sort on a modified key; expected averages every position inside the tie group."""
    n, n_items = scores.shape
    out: dict[str, list[float]] = {name: [] for name in (*METRIC_NAMES, "rank")}
    for i in range(n):
        row = scores[i]
        tgt = int(targets[i])
        # Python's sort is stable: listing the target last (first) before a descending sort
        # puts it last (first) among the items it ties with.
        others = [j for j in range(n_items) if j != tgt]
        if policy == "pessimistic":
            order = sorted([*others, tgt], key=lambda j: -row[j])
            positions = [order.index(tgt)]
        elif policy == "optimistic":
            order = sorted([tgt, *others], key=lambda j: -row[j])
            positions = [order.index(tgt)]
        else:
            order = sorted(range(n_items), key=lambda j: -row[j])
            group = [p for p, j in enumerate(order) if row[j] == row[tgt]]
            positions = group  # the target is equally likely to sit at any of them
        for name in METRIC_NAMES:
            vals = [Fraction(metric_at(p)[name]) for p in positions]
            out[name].append(float(sum(vals) / len(vals)))
        out["rank"].append(sum(positions) / len(positions))
    return {k: np.array(v) for k, v in out.items()}


@pytest.fixture
def tied_scores() -> tuple[np.ndarray, np.ndarray]:
    """Scores with only a handful of distinct values, so nearly every target has ties."""
    rng = np.random.default_rng(12345)
    scores = rng.integers(0, 6, size=(60, 40)).astype(np.float32) / 4
    scores[:5] = 0.5  # whole rows tied
    targets = rng.integers(0, 40, size=60)
    return scores, targets


@pytest.fixture(params=["compiled", "numpy"])
def kernel(request: pytest.FixtureRequest) -> object:
    """Runs a test with each counting kernel (compiled numba pass, numpy fallback)."""
    if request.param == "numpy":
        with numpy_counting():
            assert not compiled_available()
            yield request.param
    else:
        if not compiled_available():
            pytest.skip("numba is not installed (the `fast` extra)")
        yield request.param


def test_kernels_agree_on_ties_nan_and_inf() -> None:
    """The compiled single pass and numpy give the same integers, for every float dtype."""
    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        block = np.round(rng.standard_normal((50, 333)), 1).astype(dtype)
        block[3, 7] = np.nan
        block[4, :5] = np.inf
        block[5, 9] = -np.inf
        tvals = block[np.arange(50), rng.integers(0, 333, size=50)]
        tvals[6] = np.nan
        got = count_rows(block, tvals, with_lesser=True)
        with numpy_counting():
            want = count_rows(block, tvals, with_lesser=True)
        for a, b in zip(got, want, strict=True):
            assert a is not None and b is not None
            np.testing.assert_array_equal(a, b)
        assert got[0][0] == int((block[0] > tvals[0]).sum())
        assert got[1][6] == 0 and got[0][6] == 0  # NaN target: nothing compares true
        assert int(got[0][3] + got[1][3] + got[2][3]) == 332  # the NaN is in no count
        assert count_rows(block, tvals, with_lesser=False)[2] is None


@pytest.mark.parametrize("policy", TIE_POLICIES)
def test_matches_brute_force_sort_with_ties(
    tied_scores: tuple[np.ndarray, np.ndarray], policy: str, kernel: str
) -> None:
    scores, targets = tied_scores
    g, t = rank_counts(scores, targets)
    assert (t > 0).mean() > 0.5  # the fixture really exercises ties
    got = metrics_from_counts(g, t, policy)
    want = brute_force(scores, targets, policy)
    for name in (*METRIC_NAMES, "rank"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-15, err_msg=name)


def test_matches_brute_force_continuous_scores() -> None:
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((50, 300))
    targets = rng.integers(0, 300, size=50)
    g, t = rank_counts(scores, targets)
    assert not t.any()
    want = brute_force(scores, targets, "pessimistic")
    for policy in TIE_POLICIES:
        got = metrics_from_counts(g, t, policy)
        for name in METRIC_NAMES:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, err_msg=name)


def test_counts_are_strict_and_exclude_target() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.5, 0.5, 0.2]])
    g, t = rank_counts(scores, np.array([2]))
    assert g.dtype == np.int64 and t.dtype == np.int64
    assert (int(g[0]), int(t[0])) == (1, 2)


def test_hand_computed_cases() -> None:
    # Target best: every metric is 1.
    m = metrics_from_counts(np.array([0]), np.array([0]))
    assert all(m[name][0] == 1.0 for name in METRIC_NAMES)
    # Rank 3 (three items above): in the top 5 and 10, not the top 1.
    m = metrics_from_counts(np.array([3]), np.array([0]))
    assert m["recall@1"][0] == 0.0 and m["recall@5"][0] == 1.0 and m["recall@10"][0] == 1.0
    assert m["ndcg@5"][0] == pytest.approx(1 / math.log2(5))
    assert m["ndcg@10"][0] == pytest.approx(1 / math.log2(5))
    assert m["mrr"][0] == pytest.approx(0.25)
    # Rank 5 falls out of the top 5 only; rank 10 out of every cutoff.
    m = metrics_from_counts(np.array([5, 10]), np.array([0, 0]))
    assert list(m["ndcg@5"]) == [0.0, 0.0]
    assert m["ndcg@10"][0] == pytest.approx(1 / math.log2(7)) and m["ndcg@10"][1] == 0.0
    assert list(m["recall@10"]) == [1.0, 0.0]


def test_tie_policies_hand_computed() -> None:
    # One item above, two tied: positions 1, 2 or 3.
    g, t = np.array([1]), np.array([2])
    pess = metrics_from_counts(g, t, "pessimistic")
    opt = metrics_from_counts(g, t, "optimistic")
    exp = metrics_from_counts(g, t, "expected")
    assert pess["rank"][0] == 3 and opt["rank"][0] == 1 and exp["rank"][0] == 2
    assert pess["mrr"][0] == pytest.approx(1 / 4)
    assert opt["mrr"][0] == pytest.approx(1 / 2)
    assert exp["mrr"][0] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert exp["recall@1"][0] == 0.0
    assert exp["ndcg@5"][0] == pytest.approx(sum(1 / math.log2(p + 2) for p in (1, 2, 3)) / 3)
    # A tie group straddling the cutoff: positions 8..11, two of four inside the top 10.
    exp = metrics_from_counts(np.array([8]), np.array([3]), "expected")
    assert exp["recall@10"][0] == pytest.approx(0.5)
    assert exp["ndcg@10"][0] == pytest.approx((1 / math.log2(10) + 1 / math.log2(11)) / 4)


def test_expected_mrr_large_tie_groups() -> None:
    g = np.array([0, 3, 70, 1000, 250_000])
    t = np.array([100_000, 500, 7, 1, 120_000])
    got = metrics_from_counts(g, t, "expected")["mrr"]
    want = [
        math.fsum(1 / (p + 1) for p in range(int(gi), int(gi + ti) + 1)) / (ti + 1)
        for gi, ti in zip(g, t, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    # Exact rational check across the table/asymptotic boundary of the harmonic helper.
    for a, b in [(0, 64), (63, 65), (64, 65), (10, 200)]:
        exact = sum(Fraction(1, j) for j in range(a + 1, b + 1))
        assert harmonic_diff(np.array([a]), np.array([b]))[0] == pytest.approx(
            float(exact), rel=1e-15
        )


@pytest.mark.parametrize("policy", TIE_POLICIES)
def test_batch_size_does_not_change_results(policy: str) -> None:
    rng = np.random.default_rng(2024)
    scores = np.round(rng.standard_normal((1030, 97)), 1)  # rounding makes ties common
    targets = rng.integers(0, 97, size=1030)
    results = []
    for batch in (1, 7, 512):
        acc = RankingAccumulator()
        for s in range(0, len(targets), batch):
            acc.add(scores[s : s + batch], targets[s : s + batch])
        assert len(acc) == len(targets)
        results.append((acc.result(policy), acc.per_example(policy)))
    for res, per in results[1:]:
        assert res == results[0][0]  # bit-identical means
        for name in (*METRIC_NAMES, "rank"):
            np.testing.assert_array_equal(per[name], results[0][1][name])
    direct = mean_metrics(metrics_from_counts(*rank_counts(scores, targets), policy))
    assert results[0][0] == direct
    assert all(isinstance(v, float) for v in direct.values())


def test_exclude_removes_items_above_and_tied() -> None:
    scores = np.array([[0.9, 0.8, 0.5, 0.5, 0.7, 0.1], [0.9, 0.8, 0.5, 0.5, 0.7, 0.1]])
    targets = np.array([2, 2])
    g, t = rank_counts(scores, targets)
    assert g.tolist() == [3, 3] and t.tolist() == [1, 1]
    # Row 0 drops two items above (0, 4) and the tied one (3); duplicates count once. Row 1
    # drops only an item below, which changes nothing.
    g, t = rank_counts(scores, targets, exclude=[np.array([0, 4, 3, 0]), [5]])
    assert g.tolist() == [1, 3] and t.tolist() == [0, 1]
    # The same scores through the dot-product path: identity item vectors.
    users = torch.tensor(scores, dtype=torch.float32)
    g2, t2 = score_and_count(users, torch.eye(6), targets, exclude=[np.array([0, 4, 3, 0]), None])
    assert g2.tolist() == [1, 3] and t2.tolist() == [0, 1]


def test_exclude_validation() -> None:
    scores = np.zeros((2, 4))
    with pytest.raises(ValueError, match="target"):
        rank_counts(scores, np.array([1, 2]), exclude=[[0], [2, 3]])
    with pytest.raises(ValueError, match="one entry per row"):
        rank_counts(scores, np.array([1, 2]), exclude=[[0]])
    with pytest.raises(ValueError, match="outside"):
        rank_counts(scores, np.array([1, 2]), exclude=[[0], [9]])


def test_nan_raises_naming_row(kernel: str) -> None:
    scores = np.random.default_rng(3).standard_normal((6, 10))
    targets = np.arange(6)
    scores[4, 7] = np.nan  # not the target
    scores[5, 5] = np.nan  # the target itself
    with pytest.raises(ValueError, match="row 4"):
        rank_counts(scores, targets)
    with pytest.raises(ValueError, match="row 1"):
        rank_counts(scores[[0, 5]], [0, 5])
    # inf - inf style NaN through the dot-product path, and infinities that are not NaN.
    users = torch.ones(3, 2)
    items = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    users[1] = torch.tensor([float("inf"), float("-inf")])
    with pytest.raises(ValueError, match="row 1"):
        score_and_count(users, items, np.array([0, 0, 0]))
    # Finite inputs whose products can overflow (and, kernel permitting, give inf - inf) turn
    # the per-row NaN check back on; ordinary embeddings skip it.
    assert not _scores_provably_finite(torch.tensor([[1e30, -1e30]]), torch.tensor([[1e10, 1.0]]))
    assert not _scores_provably_finite(users, items)
    assert _scores_provably_finite(torch.randn(5, 3), torch.randn(7, 3) * 1e6)
    inf_scores = np.array([[np.inf, 1.0, np.inf, -np.inf]])
    g, t = rank_counts(inf_scores, [0])
    assert (int(g[0]), int(t[0])) == (0, 1)


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="outside"):
        rank_counts(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="2-D"):
        rank_counts(np.zeros(3), np.array([0]))
    with pytest.raises(ValueError, match="tie policy"):
        metrics_from_counts(np.array([0]), np.array([0]), "random")


def test_torch_and_low_precision_inputs() -> None:
    rng = np.random.default_rng(11)
    scores = np.round(rng.standard_normal((40, 50)), 1).astype(np.float32)
    targets = rng.integers(0, 50, size=40)
    want = rank_counts(scores, targets)
    for arr in (
        torch.from_numpy(scores),
        torch.from_numpy(scores).half(),
        torch.from_numpy(scores).bfloat16(),
        np.asfortranarray(scores),
        scores.astype(np.float16),
    ):
        low = _to_float32_reference(arr)
        got = rank_counts(arr, torch.from_numpy(targets))
        ref = rank_counts(low, targets)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_array_equal(rank_counts(torch.from_numpy(scores), targets)[0], want[0])


def _to_float32_reference(arr: object) -> np.ndarray:
    if isinstance(arr, torch.Tensor):
        return arr.float().numpy()
    return np.asarray(arr, dtype=np.float32)


@pytest.mark.parametrize(("chunk_size", "n_threads"), [(None, None), (1, 1), (7, 2), (64, 3)])
def test_score_and_count_matches_materialised(
    chunk_size: int | None, n_threads: int | None
) -> None:
    rng = np.random.default_rng(99)
    users = rng.standard_normal((203, 16)).astype(np.float32)
    items = rng.standard_normal((157, 16)).astype(np.float32)
    items[100:110] = items[3]  # duplicated items make exact ties
    users[::5] = 0.0  # all-zero users tie every item
    targets = rng.integers(0, 157, size=203)
    targets[::7] = 3
    g, t = score_and_count(
        torch.from_numpy(users), torch.from_numpy(items), targets, chunk_size, n_threads=n_threads
    )
    full = torch.from_numpy(users) @ torch.from_numpy(items).T
    g_ref, t_ref = rank_counts(full, targets)
    np.testing.assert_array_equal(g, g_ref)
    np.testing.assert_array_equal(t, t_ref)
    assert t.max() == 156 and (t[::7] >= 10).all()
    g_np, t_np = score_and_count(users, items, targets, chunk_size, n_threads=n_threads)
    np.testing.assert_array_equal(g_np, g_ref)
    np.testing.assert_array_equal(t_np, t_ref)


def test_torch_counting_path_agrees(tied_scores: tuple[np.ndarray, np.ndarray]) -> None:
    # The accelerator path uses torch reductions; check them on CPU against the numpy kernel.
    scores, targets = tied_scores
    s = torch.from_numpy(scores)
    tv = s.gather(1, torch.from_numpy(targets).unsqueeze(1)).squeeze(1)
    g, t = _count_block_torch(s, tv, 0)
    g_ref, t_ref = rank_counts(scores, targets)
    np.testing.assert_array_equal(g.numpy(), g_ref)
    np.testing.assert_array_equal(t.numpy(), t_ref)
    s[3, 0] = float("nan")
    with pytest.raises(ValueError, match="row 3"):
        _count_block_torch(s, tv, 0)


def test_empty_accumulator_and_shapes() -> None:
    acc = RankingAccumulator()
    with pytest.raises(ValueError, match="zero examples"):
        acc.result()
    acc.add_counts(np.array([0, 20]), np.array([0, 0]))
    res = acc.result()
    assert set(res) == set(METRIC_NAMES)
    assert res["recall@1"] == 0.5 and res["mrr"] == pytest.approx((1 + 1 / 21) / 2)


def test_threaded_scoring_names_first_bad_row_and_restores_threads() -> None:
    rng = np.random.default_rng(5)
    users = rng.standard_normal((60, 8)).astype(np.float32)
    items = rng.standard_normal((30, 8)).astype(np.float32)
    targets = rng.integers(0, 30, size=60)
    want = rank_counts(users @ items.T, targets)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = score_and_count(users, items, targets, chunk_size=4, n_threads=3)
        assert torch.get_num_threads() == 2
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        users[50, 0] = np.nan  # a late chunk
        users[21, 3] = np.nan  # an earlier chunk: this one must be named
        for _ in range(5):  # chunk-to-worker assignment varies from run to run
            with pytest.raises(ValueError, match="row 21 "):
                score_and_count(users, items, targets, chunk_size=4, n_threads=3)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_workers_report_earliest_failing_row() -> None:
    # Both chunks are taken before either fails, so both errors are recorded.
    barrier = threading.Barrier(2, timeout=10)

    def do_chunk(start: int, buf: object) -> None:
        barrier.wait()
        raise NaNScoresError(start + 3)

    with pytest.raises(NaNScoresError, match="row 3 ") as info:
        _run_workers(2, [0, 10], lambda: None, do_chunk)
    assert info.value.row == 3
