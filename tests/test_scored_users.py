"""Validation holds a narrating result to its user partition: the users left out of the text
metrics are exactly those the recorded rule puts outside the held-out bucket, so a file
cannot drop the users its text scores worst on (the published cells serve as the real files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regen_bench.results import ResultError, load_result
from tests.published import Samples, copy_published, edit_covering_tracks


def _first(rows: Samples, excluded: bool) -> dict[str, Any]:
    return next(
        s for s in rows if s["reference"] is not None and bool(s.get("text_excluded")) == excluded
    )


def test_the_published_files_pass(tmp_path: Path) -> None:
    for name in ("lumen__purchase_reason", "flare__purchase_reason"):
        load_result(copy_published("narrative", name, tmp_path))


def test_a_held_out_user_cannot_be_left_out(tmp_path: Path) -> None:
    # LUMEN's own text partition
    path = copy_published("narrative", "lumen__purchase_reason", tmp_path)

    def drop(rows: Samples) -> None:
        s = _first(rows, excluded=False)
        s["text_excluded"], s["generated"] = "no reason", None

    edit_covering_tracks(path, drop)
    with pytest.raises(ResultError, match=r"left out of the text metrics, but the partition "
                       r"\(salt 'regen-narrator-v1', held-out fraction 0.1\) puts it in the "
                       r"held-out bucket"):  # fmt: skip
        load_result(path)


def test_a_training_user_cannot_be_scored(tmp_path: Path) -> None:
    # the fine-tuned narrator's partition
    path = copy_published("narrative", "flare__purchase_reason", tmp_path)

    def add(rows: Samples) -> None:
        s = _first(rows, excluded=True)
        del s["text_excluded"]
        s["generated"] = s["reference"]  # a narrator that saw this user's reference

    edit_covering_tracks(path, add)
    with pytest.raises(ResultError, match=r"scored in the text metrics, but .* outside the"):
        load_result(path)


@pytest.mark.parametrize("field", ["scored", "excluded", "failed"])
def test_the_counts_must_match_the_samples(tmp_path: Path, field: str) -> None:
    path = copy_published("narrative", "flare__purchase_reason", tmp_path)
    count = json.loads(path.read_text())["narration"][field]
    edit_covering_tracks(path, result=lambda raw: raw["narration"].update({field: count + 1}))
    with pytest.raises(ResultError, match=rf"narration.{field} = {count + 1} but the per-sample"):
        load_result(path)


def test_no_user_is_left_out_without_a_partition(tmp_path: Path) -> None:
    path = copy_published("narrative", "flare__purchase_reason", tmp_path)
    edit_covering_tracks(path, result=lambda raw: raw["narration"].update(finetune=None))
    with pytest.raises(ResultError, match="'text_excluded' but the narration records no user"):
        load_result(path)


def test_text_over_other_users_never_shares_a_table(tmp_path: Path) -> None:
    from regen_bench.leaderboard import comparability_key, group_results

    ours = load_result(copy_published("narrative", "flare__purchase_reason", tmp_path))
    assert ours.narration is not None and ours.narration.finetune is not None
    half = ours.model_copy(
        update={
            "narration": ours.narration.model_copy(
                update={
                    "finetune": ours.narration.finetune.model_copy(update={"heldout_fraction": 0.5})
                }
            )
        }
    )
    everyone = ours.model_copy(
        update={"narration": ours.narration.model_copy(update={"finetune": None})}
    )
    keys = [comparability_key(r)[1] for r in (ours, half, everyone)]
    assert keys[0].startswith("text-users:heldout@regen-narrator-v1/0.1|bleu:")
    assert keys[1].startswith("text-users:heldout@regen-narrator-v1/0.5|bleu:")
    assert keys[2].startswith("text-users:all|bleu:")
    assert len(group_results([ours, half, everyone])) == 3
