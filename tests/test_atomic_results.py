"""Writing results: the output folder is checked before any work, a result and its samples are
written as a pair (an interrupted run leaves nothing that fails ``validate``), Ctrl-C at any
moment is one line and status 130, and a folder given as the dataset is named as such."""

from __future__ import annotations

import os
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import regen_bench.runner.steps as steps
from regen_bench.cli import main
from regen_bench.cli._common import EXIT_INTERRUPTED, PREFIX
from regen_bench.results import load_result

INTERRUPTED = PREFIX[EXIT_INTERRUPTED]
#: The old pair and the new one differ (20 and 30 test users), so an old result beside new
#: samples cannot pass for a pair.
OLD, NEW = 20, 30


def _args(out: Path, limit: int) -> list[str]:
    return [
        "run", "--model", "popularity", "--task", "sequential", "--threads", "1", "-q",
        "--output", str(out), "--limit", str(limit),
    ]  # fmt: skip


def _command() -> list[str]:
    """``regen-bench`` as a new user would type it (the installed script, else ``-m``)."""
    script = Path(sys.executable).parent / "regen-bench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "regen_bench"]


def _cpu_seconds(pid: int) -> float | None:
    """The CPU time process ``pid`` has used (Linux ``/proc``), None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _signal_after(proc: subprocess.Popen[bytes], seconds: float, sig: signal.Signals) -> None:
    """Send ``sig`` once ``proc`` has run ``seconds`` of its own CPU time: a moment of the
    command's work that a busy machine (other jobs, a loaded CI runner) does not shift, where
    wall time would land in the interpreter's own start-up, ahead of any line of this
    project. Wall time where ``/proc`` is missing."""
    if _cpu_seconds(proc.pid) is None:
        time.sleep(seconds)
    else:
        while proc.poll() is None and (_cpu_seconds(proc.pid) or 0.0) < seconds:
            time.sleep(0.002)
    proc.send_signal(sig)


def _folder(out: Path) -> Path:
    return out / "mini" / "sequential"


def _visible(folder: Path, hidden: bool = False) -> set[str]:
    """The file names in ``folder`` (with ``hidden``: those starting with a dot: temp files)."""
    if not folder.exists():
        return set()
    return {p.name for p in folder.iterdir() if p.name.startswith(".") == hidden}


def _hidden(folder: Path) -> set[str]:
    return _visible(folder, hidden=True)


def _check_left(folder: Path) -> int | None:
    """What an interrupted run left must validate: every result passes ``regen-bench validate``
    and a samples file without its result is the only other thing allowed. The result's number
    of test users (None when no result is left)."""
    results = sorted(folder.glob("[!.]*.json"))
    if results:
        assert main(["validate", *map(str, results)]) == 0, "a left result does not validate"
        assert len(results) == 1
        return load_result(results[0]).protocol.test_examples
    assert _visible(folder) <= {"popularity.samples.jsonl"}
    return None


# -- the output folder is checked before any work -------------------------------------------


def _obeying_permissions() -> list[str] | None:
    """A command prefix under which this user obeys permission bits: none needed but for
    root, which ignores them unless ``setpriv`` drops the capabilities that let it (None when
    it cannot)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def _unwritable_outputs(tmp_path: Path) -> Iterator[tuple[list[str], str, str]]:
    """(command prefix, output, what the line says) for outputs no run can write in."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    yield [], str(blocker), "exists and is not a folder"
    yield [], os.devnull, "exists and is not a folder"
    yield [], str(blocker / "below"), "exists and is not a folder"
    if Path("/proc/self").is_dir():  # a folder where no one, root included, can make one
        yield [], "/proc/regen-bench-results", "cannot create"
    prefix = _obeying_permissions()
    if prefix is not None:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        yield prefix, str(locked), "cannot write a file in it (Permission denied)"
        yield prefix, str(locked / "new"), "cannot create"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_an_unwritable_output_fails_in_one_line_before_any_work(tmp_path: Path) -> None:
    for prefix, output, says in _unwritable_outputs(tmp_path):
        before = _children_cpu()
        done = subprocess.run(
            [*prefix, *_command(), *_args(Path(output), NEW)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        # CPU seconds, not wall time: the same on a busy machine (a run trains for longer).
        spent = _children_cpu() - before
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (output, done.stderr)
        assert len(lines) == 1 and lines[0].startswith(
            f"regen-bench: error: output folder {output}"
        )
        assert says in lines[0], lines[0]
        # The dataset line of a run ("dataset mini: ...") would come before training.
        assert "dataset" not in done.stderr
        assert spent < 2, f"{output}: {spent:.1f} s"
        assert done.stdout == ""


def test_the_check_leaves_no_folder_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "results"
    assert main([*_args(out, NEW)[:-2], "--dataset", str(tmp_path / "none.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_the_dataset_folder_is_checked_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """OUT/<dataset> is known once the dataset is loaded, still before training."""
    (tmp_path / "mini").write_text("a file where the dataset's folder goes")

    def no_training(*_a: object, **_k: object) -> None:
        raise AssertionError("trained")

    monkeypatch.setattr(steps, "fit", no_training)
    assert main(_args(tmp_path, NEW)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"regen-bench: error: output folder {tmp_path / 'mini' / 'sequential'}: "
        f"{tmp_path / 'mini'} exists and is not a folder"
    )


# -- a result and its samples are written as a pair -----------------------------------------


class _Trip:
    """In a forked run: at the ``n``-th call of ``module.name`` (or the ``n``-th sample
    written), tell the parent through ``pipe``, then wait to be killed."""

    def __init__(self, pipe: int, out: Path) -> None:
        self.pipe, self.out = pipe, out

    def fire(self) -> None:
        os.write(self.pipe, b"x")
        time.sleep(0.5)  # killed here; Ctrl-C held back in a commit sleeps it out

    def on_call(self, module: Any, name: str, n: int, after: bool = False) -> None:
        """At the ``n``-th call that names a path in the output folder (any call: n=0)."""
        original = getattr(module, name)
        calls = [0]

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counted = n == 0 or any(str(a).startswith(str(self.out)) for a in args)
            calls[0] += counted
            hit = counted and calls[0] == max(n, 1)
            if hit and not after:
                self.fire()
            value = original(*args, **kwargs)
            if hit and after:
                self.fire()
            return value

        setattr(module, name, wrapper)

    def on_sample(self, n: int) -> None:
        evaluate = steps.evaluate
        fire = self.fire

        class Samples(list[Any]):
            tripped = False

            def __iter__(self) -> Iterator[Any]:
                for i, sample in enumerate(super().__iter__()):
                    if i == n and not Samples.tripped:
                        Samples.tripped = True
                        fire()
                    yield sample

        def slow(*args: Any, **kwargs: Any) -> Any:
            evaluated = evaluate(*args, **kwargs)
            evaluated.samples = Samples(evaluated.samples)
            return evaluated

        steps.evaluate = slow


#: Where a run is stopped: before the writes (training, the samples half written), at each
#: rename into the output folder, and after the last one.
POINTS: dict[str, Callable[[_Trip], None]] = {
    "training": lambda t: t.on_call(steps, "fit", 0),
    "writing the samples": lambda t: t.on_sample(NEW // 2),
    "first rename": lambda t: t.on_call(os, "replace", 1),
    "second rename": lambda t: t.on_call(os, "replace", 2),
    "after the renames": lambda t: t.on_call(os, "replace", 2, after=True),
}


def _killed_run(out: Path, arm: Callable[[_Trip], None], sig: int) -> int:
    """A run (forked, imports already done) stopped by ``sig`` where ``arm`` says; its status."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        status = 99
        try:
            os.close(read)
            arm(_Trip(write, out))
            status = main(_args(out, NEW))
        finally:
            os._exit(status)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 60)
    fired = bool(ready) and os.read(read, 1) == b"x"
    os.close(read)
    if fired:
        os.kill(pid, sig)
    _, wait_status = os.waitpid(pid, 0)
    assert fired, "the run ended before the point it was to be stopped at"
    return os.waitstatus_to_exitcode(wait_status)


@pytest.fixture(scope="module")
def old_pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A valid pair from an earlier run (also loads everything the forked runs need)."""
    out = tmp_path_factory.mktemp("old")
    assert main(_args(out, OLD)) == 0
    folder = _folder(out)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _holding(out: Path, pair: dict[str, bytes]) -> Path:
    folder = _folder(out)
    shutil.rmtree(out, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in pair.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("point", list(POINTS))
def test_ctrl_c_leaves_the_old_pair_or_the_new_one(
    point: str, tmp_path: Path, old_pair: dict[str, bytes]
) -> None:
    folder = _holding(tmp_path, old_pair)
    assert _killed_run(tmp_path, POINTS[point], signal.SIGINT) == EXIT_INTERRUPTED
    assert _hidden(folder) == set(), "a temp file was left"
    users = _check_left(folder)
    assert _visible(folder) == set(old_pair)  # a pair, never one file of it
    if point in ("training", "writing the samples"):
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == old_pair
    else:  # once the renames began, Ctrl-C waits for the pair to be complete
        assert users == NEW


@pytest.mark.parametrize("point", list(POINTS))
def test_a_killed_run_leaves_nothing_that_fails_validate(
    point: str, tmp_path: Path, old_pair: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _holding(tmp_path, old_pair)
    assert _killed_run(tmp_path, POINTS[point], signal.SIGKILL) == -signal.SIGKILL
    users = _check_left(folder)
    if point in ("training", "writing the samples"):
        assert users == OLD
    if _hidden(folder) or users is None:
        # A temp file, or samples with no result: the next run removes the first and
        # replaces the second.
        assert main(_args(tmp_path, NEW)) == 0
        assert _hidden(folder) == set()
        assert _visible(folder) == set(old_pair)
        assert _check_left(folder) == NEW
    capsys.readouterr()


def test_runs_stopped_at_random_moments_leave_valid_pairs(
    tmp_path: Path, old_pair: dict[str, bytes]
) -> None:
    """The real command, Ctrl-C or SIGKILL at seeded moments spread over a whole run, all in
    one folder that starts with a valid pair."""
    folder = _holding(tmp_path, old_pair)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([*_command(), *_args(tmp_path, NEW)], capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    length = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)  # CPU s
    assert _check_left(folder) == NEW
    rng = random.Random(18)
    tries = 4
    for i in range(tries):
        # From 0.2 CPU s: before that the interpreter itself is starting (its own Ctrl-C,
        # ahead of any line of this project; test_ctrl_c_in_the_first_second covers what
        # follows).
        delay = max(0.2, rng.uniform(i * length / tries, (i + 1) * length / tries))
        sig = (signal.SIGINT, signal.SIGKILL)[i % 2]
        limit = (OLD, NEW)[rng.randrange(2)]
        proc = subprocess.Popen(
            [*_command(), *_args(tmp_path, limit)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        _signal_after(proc, delay, sig)
        _, err = proc.communicate(timeout=60)
        assert b"Traceback" not in err
        where = f"{sig.name} after {delay:.2f} CPU s of {length:.2f}"
        assert _check_left(folder) in (OLD, NEW, None), where


# -- Ctrl-C at any moment ---------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.25, 0.5, 0.9])
def test_ctrl_c_in_the_first_second_is_one_line(delay: float, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*_command(), *_args(tmp_path, NEW)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _signal_after(proc, delay, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert err.decode().splitlines()[-1] == INTERRUPTED
    assert b"Traceback" not in err
    assert not (tmp_path / "mini").exists() or _check_left(_folder(tmp_path)) is None


#: A process that is the ``regen-bench`` command (by its name), stopped while it loads the
#: command line or once its command is done, when the interpreter exits.
WAITS = {
    "loading": "import regen_bench.cli\n",
    "exiting": "from regen_bench.cli import main\nmain(['plugins', '--json'])\n",
}


@pytest.mark.parametrize("when", list(WAITS))
def test_ctrl_c_while_loading_or_exiting_is_one_line(when: str) -> None:
    code = (
        "import sys, time\nsys.argv[0] = 'regen-bench'\n"
        + WAITS[when]
        + "print('ready', file=sys.stderr, flush=True)\ntime.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    assert proc.stderr.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_INTERRUPTED
    assert err.decode() == INTERRUPTED + "\n"


def test_ctrl_c_in_a_callback_python_only_prints_still_stops_the_command(tmp_path: Path) -> None:
    """A Ctrl-C that lands in a weakref callback (the import system's module locks use one) is
    printed and dropped by Python; the command must stop all the same, not run on to the end."""
    done = tmp_path / "ran-on"
    code = (
        "import sys, weakref\nsys.argv[0] = 'regen-bench'\nimport regen_bench.cli as cli\n"
        "class Held: pass\n"
        "def interrupted(_ref): raise KeyboardInterrupt\n"
        "def work(argv):\n"
        "    held = Held()\n    ref = weakref.ref(held, interrupted)\n    del held\n"
        "    import time\n    start = time.monotonic()\n"
        "    while time.monotonic() - start < 5: sum(range(100))\n"
        f"    open({str(done)!r}, 'w').close()\n    return 0\n"
        "cli._main = work\nsys.exit(cli.main([]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr
    assert proc.stderr.decode() == INTERRUPTED + "\n"
    assert not done.exists()


def test_importing_the_command_line_leaves_ctrl_c_alone() -> None:
    """A program that imports the command line (a test, a notebook) keeps its own Ctrl-C."""
    code = (
        "import signal\nfrom regen_bench.cli import main\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
        "main(['plugins', '--json'])\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[0] == "True"
    assert done.stdout.splitlines()[-1] == "True"


# -- a folder given as the dataset ------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "data info"])
def test_a_folder_given_as_the_dataset_is_named_a_folder(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "regen-data"
    folder.mkdir()
    given = f"{folder}{os.sep}"
    args = [*command.split(), "--dataset", given]
    if command == "run":
        args += ["--model", "popularity", "--task", "sequential", "--output", str(tmp_path / "r")]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        f"regen-bench: error: dataset file '{given}' is a directory, expected a dataset file "
        "(a REGEN-format .jsonl or .jsonl.gz, see docs/data-format.md)"
    )
