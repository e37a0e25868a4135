"""Score the model-based text metrics of result files again from their per-sample texts, and
write the new figures into the files where they differ.

    python scripts/rescore_text_metrics.py RESULT.json [...]   (then `leaderboard build`)

For maintainers, after a change to how the harness computes semantic similarity or BERTScore
(no per-sample text changes): the per-sample file, its hash and every other figure stay as
they are, and `regen-bench leaderboard check --text-models` passes on the files afterwards.
Each metric is rescored with the weights the result pins, with the torch threads it records;
a result whose models are not available here is left alone and named. Rescore the grid's own
copies too (`reproduce --out` folder), or remove them: `reproduce` submits its valid results
again, replacing the published ones. Used once so far: when
BERTScore stopped depending on the process's string-hash seed, every published BERTScore
moved by at most ~1e-5 (docs/reproduce.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

from regen_bench.leaderboard.text_models import recheck
from regen_bench.progress import output
from regen_bench.results import ResultError, load_result, write_result


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    failed = 0
    for name in paths:
        path = Path(name)
        try:
            result = load_result(path, check_samples=True)
        except ResultError as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        found = recheck(path, result)
        for why in found.skipped:
            print(f"left alone {path}: {why}", file=sys.stderr)
            failed += 1
        changed = found.differing
        if changed:
            metrics = dict(result.metrics)
            metrics.update({k: again for k, (_, again) in changed.items()})
            write_result(path, result.model_copy(update={"metrics": metrics}))
        print(f"{'rewrote' if changed else 'unchanged'} {path}: {found.describe()}")
    return 1 if failed else 0


if __name__ == "__main__":
    with output():  # the CLI's output settings: no third-party loading bars
        code = main(sys.argv[1:])
    sys.exit(code)
