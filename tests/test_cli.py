"""The command line as a new user would meet it: runs, result files, validation, errors."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from regen_bench.cli import COMMANDS, build_parser, main
from regen_bench.cli._common import positional_or_option
from regen_bench.data.regen import write_records
from regen_bench.results import load_result
from tests.conftest import make_record


@pytest.fixture
def toy_file(tmp_path: Path) -> Path:
    """40 users over 12 items with a popular head, some critiques."""
    records = []
    for u in range(40):
        asins = [f"B{(u * 7 + k * (1 + u % 3)) % 12:02d}" for k in range(3 + u % 5)]
        asins = list(dict.fromkeys(asins))
        if len(asins) < 3:
            asins = ["B00", "B01", "B02"]
        records.append(
            make_record(
                f"U{u:03d}", asins, {len(asins) - 1: "A cheaper one"} if u % 4 == 0 else None
            )
        )
    path = tmp_path / "toy.jsonl.gz"
    write_records(records, path)
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _toy_args(model: str, task: str, toy_file: Path, output: Path, *extra: str) -> list[str]:
    """``run`` arguments for ``model`` on the toy file, quiet, writing under ``output``."""
    return [
        "run",
        "--model",
        model,
        "--task",
        task,
        "--dataset",
        str(toy_file),
        "--output",
        str(output),
        "-q",
        *extra,
    ]


def test_run_writes_valid_result_and_table(toy_file: Path, tmp_path: Path, capsys) -> None:
    code, out, _ = _run(_toy_args("popularity", "critique", toy_file, tmp_path / "res"), capsys)
    assert code == 0, out
    assert "ndcg@10" in out and "critiqued" in out and "signature: regen-bench:0|data:toy@" in out
    result_path = tmp_path / "res" / "toy" / "critique" / "popularity.json"
    result = load_result(result_path)
    assert result.protocol.test_examples == 40
    assert result.protocol.critiqued_examples == 10
    assert result.dataset.items == 12
    assert set(result.metrics) >= {"recall@10", "ndcg@10", "mrr", "critiqued/ndcg@10"}
    samples = (result_path.parent / result.samples_file).read_text().splitlines()
    assert len(samples) == 40 and len(json.loads(samples[0])["top_k"]) == 10
    code, out, _ = _run(["validate", str(result_path)], capsys)
    assert code == 0 and out.startswith("ok ")


def test_validate_rejects_tampered_results(toy_file: Path, tmp_path: Path, capsys) -> None:
    assert main(_toy_args("popularity", "sequential", toy_file, tmp_path)) == 0
    path = tmp_path / "toy" / "sequential" / "popularity.json"
    original = json.loads(path.read_text())
    cases = {
        "metric": lambda d: d["metrics"].update({"ndcg@10": d["metrics"]["ndcg@10"] + 0.01}),
        "signature": lambda d: d.update(signature=d["signature"].replace("pessimistic", "x")),
        "nan": lambda d: d["metrics"].update({"mrr": float("nan")}),
        "unknown": lambda d: d["metrics"].update({"hit@3": 0.5}),
        "schema": lambda d: d.pop("seeds"),
    }
    for name, mutate in cases.items():
        data = json.loads(json.dumps(original))
        mutate(data)
        bad = tmp_path / "toy" / "sequential" / f"bad_{name}.json"
        bad.write_text(json.dumps(data))
        code, _, err = _run(["validate", str(bad)], capsys)
        assert code == 1, name
        assert f"regen-bench: check failed: {bad}: " in err, name
    (tmp_path / "toy" / "sequential" / "popularity.samples.jsonl").write_text("{}\n")
    code, _, err = _run(["validate", str(path)], capsys)
    assert code == 1 and "sha256" in err


def test_results_do_not_depend_on_eval_batch_size(toy_file: Path, tmp_path: Path) -> None:
    texts = []
    for bs in (1, 7, 512):
        out = tmp_path / f"bs{bs}"
        args = _toy_args("popularity", "sequential", toy_file, out, "--eval-batch-size", str(bs))
        assert main(args) == 0
        texts.append((out / "toy/sequential/popularity.samples.jsonl").read_text())
    assert texts[0] == texts[1] == texts[2]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--model", "nope", "--task", "sequential"], "unknown model 'nope'"),
        (["run", "--model", "popularty", "--task", "sequential"], "Did you mean 'popularity'?"),
        (["run", "--model", "popularity", "--task", "seq"], "unknown task 'seq'"),
        (
            ["run", "--model", "popularity", "--task", "conversational"],
            "needs a narrative type, one of purchase_reason",
        ),
        (
            ["run", "--model", "popularity", "--task", "sequential", "--dataset", "nowhere"],
            "unknown dataset 'nowhere'",
        ),
        (
            ["run", "--model", "popularity", "--task", "sequential", "--set", "depth=3"],
            "unknown option(s) for Popularity: depth",
        ),
    ],
)
def test_bad_names_exit_2_with_one_line(args: list[str], needle: str, capsys) -> None:
    code, _out, err = _run(args, capsys)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("regen-bench: error: ") and needle in last
    assert "Traceback" not in err


def test_unknown_model_lists_the_models(capsys) -> None:
    _, _, err = _run(["run", "--model", "nope", "--task", "sequential"], capsys)
    assert "popularity" in err and "sasrec" in err


def test_bad_dataset_file_names_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"reviewer_id": "x"}\n')
    code, _, err = _run(
        ["run", "--model", "popularity", "--task", "sequential", "--dataset", str(bad)], capsys
    )
    assert code == 2 and "bad.jsonl:1: field 'purchase_history': missing" in err


def test_console_script_plugins_lists_entry_points() -> None:
    exe = Path(sys.executable).parent / "regen-bench"
    out = subprocess.run([str(exe), "plugins"], capture_output=True, text=True, check=True)
    assert "popularity" in out.stdout and "sasrec" in out.stdout
    assert "entry point (regen-bench" in out.stdout


def test_sasrec_runs_end_to_end_and_validates(toy_file: Path, tmp_path: Path, capsys) -> None:
    args = _toy_args(
        "sasrec", "sequential", toy_file, tmp_path, "--set", "epochs=2", "--set", "hidden=16"
    )
    code, out, _ = _run(args, capsys)
    assert code == 0, out
    result = load_result(tmp_path / "toy" / "sequential" / "sasrec.json")
    assert result.model.config["epochs"] == 2 and result.model.config["hidden"] == 16
    assert result.model.parameters and result.model.parameters > 0
    assert result.environment.torch is not None


def test_data_synth_and_info(tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "store.jsonl.gz"
    code, out, _ = _run(
        ["data", "synth", "--out", str(out_file), "--users", "60", "--items", "120", "--seed", "3"],
        capsys,
    )
    assert code == 0 and out_file.exists() and "users:             60" in out
    code, out, _ = _run(["data", "info", str(out_file)], capsys)
    assert code == 0 and "users          60" in out and "items          120" in out
    code, _, err = _run(["data", "synth", "--out", str(tmp_path / "x.gz"), "--users", "0"], capsys)
    assert code == 2 and "need users >= 1" in err and not (tmp_path / "x.gz").exists()


def test_limit_evaluates_a_recorded_subset(toy_file: Path, tmp_path: Path, capsys) -> None:
    args = _toy_args("popularity", "sequential", toy_file, tmp_path, "--limit", "5")
    code, _, _ = _run(args, capsys)
    assert code == 0
    path = tmp_path / "toy" / "sequential" / "popularity.json"
    data = json.loads(path.read_text())
    assert data["protocol"]["limit"] == 5 and data["protocol"]["test_examples"] == 5
    assert "|subset:first5" in data["signature"]
    samples = (tmp_path / "toy" / "sequential" / "popularity.samples.jsonl").read_text()
    assert [json.loads(line)["user_id"] for line in samples.splitlines()] == [
        f"U{u:03d}" for u in range(5)
    ]
    assert _run(["validate", str(path)], capsys)[0] == 0
    code, _, err = _run([*args[:-2], "--limit", "0"], capsys)
    assert code == 2 and "--limit must be at least 1" in err


def test_threads_option_is_applied_and_recorded(toy_file: Path, tmp_path: Path, capsys) -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        args = _toy_args("popularity", "sequential", toy_file, tmp_path, "--threads", "1")
        assert _run(args, capsys)[0] == 0
        data = json.loads((tmp_path / "toy/sequential/popularity.json").read_text())
        assert data["environment"]["threads"] == 1 and torch.get_num_threads() == 1
        code, _, err = _run([*args[:-2], "--threads", "0"], capsys)
        assert code == 2 and "--threads must be at least 1" in err
    finally:
        torch.set_num_threads(before)


def test_every_command_has_help_and_groups_list_their_subcommands(capsys) -> None:
    build_parser()  # every command's options at once: no clash between them
    paths = [[c.name] for c in COMMANDS]
    paths += [[c.name, s.name] for c in COMMANDS for s in c.commands]
    for path in paths:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0, path
        assert f"usage: regen-bench {' '.join(path)}" in capsys.readouterr().out
    assert main([]) == 2
    top = capsys.readouterr().out
    [data_line] = [line for line in top.splitlines() if "dataset tools (" in line]
    data = next(c for c in COMMANDS if c.name == "data")
    assert all(s.name in data_line for s in data.commands) and "export" in data_line
    assert "narrator tools (finetune)" in top


def test_help_loads_no_model_torch_or_llm_code() -> None:
    code = (
        "import sys\n"
        "from regen_bench.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'transformers', 'tqdm', 'pandas', 'regen_bench.runner',\n"
        "         'regen_bench.leaderboard', 'regen_bench.finetune', 'regen_bench.llm')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_python_m_entry_points() -> None:
    for module in ("regen_bench", "regen_bench.cli"):
        out = subprocess.run(
            [sys.executable, "-m", module, "--version"], capture_output=True, text=True, check=True
        )
        assert out.stdout.startswith("regen-bench ")


def test_out_and_output_are_one_option(toy_file: Path, tmp_path: Path) -> None:
    args = _toy_args("popularity", "sequential", toy_file, tmp_path / "a")
    assert main([a if a != "--output" else "--out" for a in args]) == 0
    assert main(_toy_args("popularity", "sequential", toy_file, tmp_path / "b")) == 0
    a, b = (tmp_path / d / "toy/sequential/popularity.samples.jsonl" for d in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()


def test_data_commands_take_the_dataset_as_argument_or_option(tmp_path: Path, capsys) -> None:
    code, by_arg, _ = _run(["data", "info", "mini"], capsys)
    assert code == 0 and "users          5000" in by_arg
    assert _run(["data", "info", "--dataset", "mini"], capsys)[1] == by_arg
    code, _, err = _run(["data", "info"], capsys)
    assert code == 2 and "required: DATASET (or --dataset)" in err
    code, _, err = _run(["data", "info", "mini", "--dataset", "mini"], capsys)
    assert code == 2 and "give DATASET once" in err
    for argv in (["mini", "folder"], ["--dataset", "mini", "--output", "folder"]):
        args = build_parser(["data", "export"]).parse_args(["data", "export", *argv])
        assert [positional_or_option(args, n) for n in ("dataset", "out")] == ["mini", "folder"]


def test_llm_commands_share_model_and_threads_options(monkeypatch, tmp_path: Path) -> None:
    import regen_bench.inpaint
    import regen_bench.rating

    seen: dict[str, dict[str, Any]] = {}

    def fake(name: str, real: Any) -> Any:
        @functools.wraps(real)  # the parser reads its defaults off the real signature
        def record(*_args: Any, **kwargs: Any) -> Any:
            seen[name] = kwargs
            return SimpleNamespace(lines=list) if name == "rate" else None  # inpaint: dry run

        return record

    monkeypatch.setattr(regen_bench.rating, "rate_file", fake("rate", regen_bench.rating.rate_file))
    monkeypatch.setattr(
        regen_bench.inpaint, "inpaint", fake("inpaint", regen_bench.inpaint.inpaint)
    )
    io = ["--dataset", "x.jsonl", "--backend", "hf", "--output", str(tmp_path / "o.jsonl")]
    model = ["--set", "model=a", "--set", "max_tokens=9", "--model", "b"]
    assert main(["rate", "--rater", "narrative", *io, *model]) == 0
    assert seen["rate"]["backend_options"] == {"model": "b", "max_tokens": 9}
    assert main(["inpaint", *io, *model, "--dry-run"]) == 0
    assert seen["inpaint"]["backend_config"] == {"model": "b", "max_tokens": 9}
    for argv in (
        ["rate", "--rater", "narrative", *io],
        ["inpaint", *io],
        ["trace", "--checkpoint", "saved", "--user", "U1"],
        ["run", "--model", "m", "--task", "t"],
    ):
        assert build_parser(argv).parse_args([*argv, "--threads", "1"]).threads == 1, argv
    finetune = ["narrator", "finetune", "--narrative", "purchase_reason", "--out", "o"]
    assert build_parser(finetune).parse_args([*finetune, "--limit", "5"]).limit_users == 5


def test_plugins_lists_a_models_options_from_its_schema(capsys) -> None:
    assert main(["plugins", "--options", "sasrec"]) == 0
    out = capsys.readouterr().out
    assert "max_len (int, default 50, >= 1)" in out
    assert "loss (choice, default 'ce', ce | bce)" in out
    assert main(["plugins", "--options", "sasrec", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {
        k: v
        for k, v in next(r for r in rows if r["name"] == "lr").items()
        if k != "allowed" and k != "description"
    } == {"name": "lr", "type": "float", "default": 0.002}
    assert main(["plugins", "--options", "popularity"]) == 0
    assert "declares no option schema" in capsys.readouterr().out
