"""Sharded inpainting and rating: the user partition, ``--shard i/n`` runs (one killed with
SIGKILL and resumed) through the openai backend against the local fake servers, and
``data merge`` giving the unsharded run's file byte for byte, or refusing with one line."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from regen_bench.cli import main
from regen_bench.data.regen import iter_records, write_records
from regen_bench.data.synth import write_synthetic
from regen_bench.inpaint import InpaintConfig, inpaint, plan_calls
from regen_bench.inpaint import prompts as P
from regen_bench.inpaint.pipeline import CACHE_SUFFIX, FAILURES_SUFFIX, MANIFEST_SUFFIX
from regen_bench.shards import Shard, shard_index
from tests.test_inpaint import JsonChatServer, ScriptedBackend, _cli, _env, scripted
from tests.test_rating import FakeRater, fake_rater, pool, rate_cli

__all__ = ["fake_rater", "scripted"]  # fixtures shared with those tests


def _fingerprint(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The fingerprint `regen-bench data info` prints for ``path``."""
    capsys.readouterr()
    assert main(["data", "info", str(path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("fingerprint"))
    return line.split()[1]


def _merge(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["data", "merge", *map(str, args)])
    got = capsys.readouterr()
    return rc, got.out, got.err


# -- the partition -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_every_user_is_in_exactly_one_shard(n: int, tmp_path: Path) -> None:
    data = tmp_path / "bare.jsonl"
    write_synthetic(data, users=60, items=120, seed=4, bare=True)
    ids = [r.user_id for r in iter_records(data)] + [f"A{k:06d}" for k in range(600)]
    owners = {u: [i for i in range(1, n + 1) if Shard(i, n).owns(u)] for u in ids}
    assert all(len(found) == 1 for found in owners.values())
    # The shard is the documented function of the id alone (sha256 mod n: the same in every
    # process and on every machine, whatever the file order), and it spreads the users evenly:
    # no shard gets less than half its share.
    for u in ids:
        digest = hashlib.sha256(u.encode()).digest()
        assert shard_index(u, n) == int.from_bytes(digest[:8], "big") % n + 1 == owners[u][0]
    sizes = [sum(o == [i] for o in owners.values()) for i in range(1, n + 1)]
    assert min(sizes) > len(ids) / n / 2


@pytest.mark.parametrize("bad", ["0/3", "4/3", "2", "a/b", "1/0", "-1/2"])
def test_bad_shard_spec_is_one_line(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "bare.jsonl"
    write_synthetic(data, users=5, items=120, seed=1, bare=True)
    out = tmp_path / "o.jsonl"
    args = ["--dataset", str(data), "--backend", "openai", "--out", str(out), f"--shard={bad}"]
    assert main(["inpaint", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"regen-bench: error: --shard expects i/n with 1 <= i <= n (e.g. 2/4), got '{bad}'"
    )
    assert not out.exists()


# -- inpaint: 3 shards, one killed and resumed, merged == unsharded -----------------------------


def _inpaint_args(data: Path, out: Path, url: str, *extra: str) -> list[str]:
    return [
        "inpaint",
        "--dataset",
        str(data),
        "--backend",
        "openai",
        "--model",
        "fake-model",
        "--set",
        f"base_url={url}",
        "--seed",
        "7",
        "--out",
        str(out),
        "-q",
        *extra,
    ]


def test_inpaint_shards_one_killed_merge_into_the_unsharded_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = tmp_path / "bare.jsonl"
    write_synthetic(data, users=30, items=120, seed=1, bare=True)
    full = tmp_path / "full.jsonl"
    shards = [tmp_path / f"part-{i}-of-3.jsonl" for i in (1, 2, 3)]
    srv = JsonChatServer()
    srv.delay_s = 0.05
    try:
        assert main(_inpaint_args(data, full, srv.url, "--concurrency", "4")) == 0
        # Shard 2 in its own process, killed with SIGKILL part-way...
        cmd = _cli(*_inpaint_args(data, shards[1], srv.url, "--shard", "2/3", "--concurrency", "2"))
        before = srv.hits
        proc = subprocess.Popen(
            cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
        )
        deadline = time.monotonic() + 120
        while srv.hits < before + 12 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is not None:
            pytest.fail(f"the shard ended before it could be killed: {proc.communicate()[1]!r}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not shards[1].exists()
        with sqlite3.connect(f"{shards[1]}{CACHE_SUFFIX}") as db:
            (kept,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
        assert kept >= 10
        # ...the others run meanwhile on other machines (here: one after the other)...
        for i in (1, 3):
            shard = f"{i}/3"
            args = _inpaint_args(
                data, shards[i - 1], srv.url, "--shard", shard, "--concurrency", "4"
            )
            assert main(args) == 0
        # ...and shard 2 resumes with the same command: the finished calls come from its cache.
        capsys.readouterr()
        assert main(_inpaint_args(data, shards[1], srv.url, "--shard", "2/3")) == 0
        assert f"({kept} from the cache" in capsys.readouterr().out
    finally:
        srv.close()
    manifests = [json.loads(Path(f"{s}{MANIFEST_SUFFIX}").read_text()) for s in shards]
    assert [m["shard"]["index"] for m in manifests] == [1, 2, 3]
    assert manifests[1]["cached_calls"] == kept
    # Each shard holds exactly its users, in input order.
    ids = [r.user_id for r in iter_records(data)]
    for i, s in enumerate(shards, 1):
        assert [r.user_id for r in iter_records(s)] == [u for u in ids if shard_index(u, 3) == i]
    assert all(m["users"] > 0 for m in manifests)

    merged = tmp_path / "merged.jsonl"
    rc, out, err = _merge(capsys, shards[2], shards[0], shards[1], "--out", merged)
    assert rc == 0, err
    assert "merged 3 shards of an inpaint run: 30 users" in out
    assert merged.read_bytes() == full.read_bytes()
    assert _fingerprint(merged, capsys) == _fingerprint(full, capsys)
    want = json.loads(Path(f"{full}{MANIFEST_SUFFIX}").read_text())
    got = json.loads(Path(f"{merged}{MANIFEST_SUFFIX}").read_text())
    same = ("users", "calls", "critiques", "eligible_pairs", "critique_coverage", "config")
    assert {k: got[k] for k in same} == {k: want[k] for k in same}
    assert got["output_sha256"] == want["output_sha256"] and got["shard"] is None
    assert got["usage"]["requests"] == want["calls"] and got["cached_calls"] == kept
    assert [m["shard"]["index"] for m in got["merged_from"]] == [1, 2, 3]
    assert Path(f"{merged}{FAILURES_SUFFIX}").read_text() == ""


# -- inpaint: failures merge in the unsharded order; every refusal writes nothing ---------------


@pytest.fixture
def runs(tmp_path: Path, scripted: type[ScriptedBackend]) -> dict[str, Path]:
    """An unsharded run and the shards of several runs of the scripted backend."""
    data = tmp_path / "bare.jsonl"
    write_synthetic(data, users=24, items=120, seed=2, bare=True)
    # The user-summary answers of every third user are unusable, in whichever run asks them.
    chosen = list(iter_records(data))[::3]
    prompts = [c.request.prompt for c in plan_calls(chosen, InpaintConfig()) if c.kind == "user"]

    def run(out: str, shard: Shard | None, seed: int = 0, source: Path = data) -> Path:
        scripted.bad = {(prompt,): ["not json"] for prompt in prompts}
        path = tmp_path / out
        config = InpaintConfig(seed=seed)
        inpaint(
            source, path, "scripted-inpaint", config=config, shard=shard, schema_retries=0,
            concurrency=1, progress=False, log=lambda _: None,
        )  # fmt: skip
        return path

    got = {"data": data, "full": run("full.jsonl", None)}
    for i in (1, 2, 3):
        got[f"s{i}"] = run(f"s{i}.jsonl", Shard(i, 3))
    got["s2_seed"] = run("s2-seed1.jsonl", Shard(2, 3), seed=1)
    got["s1_of_2"] = run("s1-of-2.jsonl", Shard(1, 2))
    other = tmp_path / "other.jsonl"
    write_synthetic(other, users=24, items=120, seed=3, bare=True)
    got["s2_other_input"] = run("s2-other.jsonl", Shard(2, 3), source=other)
    return got


def test_failures_merge_in_the_unsharded_order(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    merged = tmp_path / "merged.jsonl.gz"
    rc, _, err = _merge(capsys, runs["s1"], runs["s2"], runs["s3"], "--out", merged)
    assert rc == 0, err
    full = Path(f"{runs['full']}{FAILURES_SUFFIX}").read_text()
    assert full.count("\n") == 8
    assert Path(f"{merged}{FAILURES_SUFFIX}").read_text() == full
    parts = [Path(f"{runs[s]}{FAILURES_SUFFIX}").read_text() for s in ("s1", "s2", "s3")]
    assert sum(p != "" for p in parts) >= 2  # the failures really come from 2+ shards
    assert list(iter_records(merged)) == list(iter_records(runs["full"]))  # .gz: same content
    got = json.loads(Path(f"{merged}{MANIFEST_SUFFIX}").read_text())
    assert got["failures"] == {"user": 8}


def test_merge_refuses_mismatched_shards_and_writes_nothing(
    runs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    scripted: type[ScriptedBackend],
) -> None:
    s1, s2, s3 = runs["s1"], runs["s2"], runs["s3"]
    # A shard made with other prompts: the system template changed, as a prompt edit would.
    original = P.template_text

    def edited_template(name: str) -> str:
        return original(name) + ("\nBe brief." if name == "system" else "")

    monkeypatch.setattr(P, "template_text", edited_template)
    s2_prompt = tmp_path / "s2-prompt.jsonl"
    inpaint(runs["data"], s2_prompt, "scripted-inpaint", shard=Shard(2, 3), progress=False,
            log=lambda _: None)  # fmt: skip
    assert "Be brief." in scripted.requests[-1].system
    monkeypatch.undo()
    dup = tmp_path / "s2-copy.jsonl"
    shutil.copy(s2, dup)
    shutil.copy(f"{s2}{MANIFEST_SUFFIX}", f"{dup}{MANIFEST_SUFFIX}")
    edited = tmp_path / "s3-edited.jsonl"
    for suffix in (MANIFEST_SUFFIX, FAILURES_SUFFIX):
        shutil.copy(f"{s3}{suffix}", f"{edited}{suffix}")
    edited.write_text(s3.read_text().replace("brief_summary", "brief-summary", 1))
    cases = {
        "seed": ([s1, runs["s2_seed"], s3], "'config' is"),
        "prompts": ([s1, s2_prompt, s3], "'prompt_sha256' is"),
        "input": ([s1, runs["s2_other_input"], s3], "'dataset_sha256' is"),
        "missing": ([s1, s3], "merge: shard(s) 2 of 3 missing"),
        "duplicated": ([s1, s2, dup, s3], "shard 2/3 given twice"),
        "same file twice": ([s1, s2, s2, s3], "shard 2/3 given twice"),
        "shard count": ([s1, runs["s1_of_2"], s2, s3], "shard counts differ"),
        "not a shard": ([runs["full"]], "not a shard (the run was made without --shard)"),
        "edited": ([s1, s2, edited], "content differs from the sha256"),
    }
    merged = tmp_path / "merged.jsonl"
    for case, (shards, message) in cases.items():
        before = sorted(tmp_path.iterdir())
        rc, out, err = _merge(capsys, *shards, "--out", merged)
        assert rc == 2 and out == "", case
        assert len(err.strip().splitlines()) == 1 and message in err, (case, err)
        assert err.startswith("regen-bench: error: ") and "Traceback" not in err
        assert sorted(tmp_path.iterdir()) == before, case  # nothing written, no temp left
    # The input moved: named with --dataset it is found (and checked) again.
    moved = tmp_path / "moved.jsonl"
    runs["data"].rename(moved)
    rc, _, err = _merge(capsys, s1, s2, s3, "--out", merged)
    assert rc == 2 and "name it with --dataset" in err
    assert _merge(capsys, s1, s2, s3, "--out", merged, "--dataset", moved)[0] == 0
    assert merged.read_bytes() == runs["full"].read_bytes()


def test_shards_of_a_limited_run_some_empty_merge_into_the_limited_run(
    tmp_path: Path, scripted: type[ScriptedBackend], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "bare.jsonl"
    write_synthetic(data, users=24, items=120, seed=5, bare=True)

    def run(out: Path, shard: Shard | None, limit: int = 5) -> Path:
        inpaint(data, out, "scripted-inpaint", limit=limit, shard=shard, progress=False,
                log=lambda _: None)  # fmt: skip
        return out

    full = run(tmp_path / "full.jsonl", None)
    shards = [run(tmp_path / f"p{i}.jsonl", Shard(i, 7)) for i in range(1, 8)]
    sizes = [len(list(iter_records(s))) for s in shards]
    assert sum(sizes) == 5 and sizes.count(0) >= 2  # --limit first, then the partition
    merged = tmp_path / "merged.jsonl"
    rc, _, err = _merge(capsys, *shards, "--out", merged)
    assert rc == 0, err
    assert merged.read_bytes() == full.read_bytes()
    other = run(tmp_path / "p3-limit6.jsonl", Shard(3, 7), limit=6)
    rc, _, err = _merge(capsys, *shards[:2], other, *shards[3:], "--out", tmp_path / "m.jsonl")
    assert rc == 2 and "'limit' is 6, but 5" in err


# -- rate: 2 shards merged == unsharded ------------------------------------------------------------


def test_rate_shards_merge_into_the_unsharded_file(
    fake_rater: FakeRater, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in.jsonl"
    write_records(pool(), data)  # 8 users, 6 rated (--limit 6), users past it copied
    full = tmp_path / "full.jsonl"
    assert rate_cli(data, full, fake_rater.url, "critique") == 0
    shards = [tmp_path / f"r{i}.jsonl" for i in (1, 2)]
    for i, s in enumerate(shards, 1):
        assert rate_cli(data, s, fake_rater.url, "critique", "--shard", f"{i}/2") == 0
    ids = [r.user_id for r in iter_records(data)]
    for i, s in enumerate(shards, 1):
        assert [r.user_id for r in iter_records(s)] == [u for u in ids if shard_index(u, 2) == i]
    merged = tmp_path / "merged.jsonl"
    rc, out, err = _merge(capsys, *shards, "--out", merged)
    assert rc == 0, err
    assert "merged 2 shards of a rate run: 6 outputs of 6 users rated" in out
    assert merged.read_bytes() == full.read_bytes()
    assert _fingerprint(merged, capsys) == _fingerprint(full, capsys)

    def table(path: Path) -> list[dict[str, str]]:
        with open(f"{path}.scores.csv", newline="") as fh:
            return list(csv.DictReader(fh))

    want, got = table(full), table(merged)
    # The real outputs' rows are the unsharded ones, in order; the negatives were drawn within
    # each shard (other donors), in the same number and user order.
    assert [r for r in got if r["variant"] == "real"] == [r for r in want if r["variant"] == "real"]
    neg = [(r["user_id"], r["variant"]) for r in got if r["variant"] != "real"]
    assert neg == [(r["user_id"], r["variant"]) for r in want if r["variant"] != "real"]
    summary = json.loads(Path(f"{merged}.rating.json").read_text())
    full_summary = json.loads(Path(f"{full}.rating.json").read_text())
    for key in ("users", "outputs", "negatives", "failed_runs", "output_sha256"):
        assert summary[key] == full_summary[key], key
    assert summary["bias"]["quality"]["real"] == full_summary["bias"]["quality"]["real"]
    assert summary["usage"]["requests"] == full_summary["usage"]["requests"]

    # A shard rated with another seed is refused, and nothing is written.
    other = tmp_path / "r2-seed.jsonl"
    assert rate_cli(data, other, fake_rater.url, "critique", "--shard", "2/2", "--seed", "6") == 0
    before = sorted(tmp_path.iterdir())
    rc, _, err = _merge(capsys, shards[0], other, "--out", tmp_path / "m2.jsonl")
    assert rc == 2 and "'seed' is 6, but 5" in err and len(err.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == before
    # Outputs of inpaint and rate do not mix.
    Path(f"{shards[1]}{MANIFEST_SUFFIX}").write_text("{}")
    rc, _, err = _merge(capsys, *shards, "--out", tmp_path / "m3.jsonl")
    assert rc == 2 and "expected exactly one of" in err
