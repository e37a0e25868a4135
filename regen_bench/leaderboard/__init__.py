"""Leaderboards: validated submissions in, deterministic Markdown and HTML tables out.

- :mod:`~regen_bench.leaderboard.submissions`: checking result files, accepting them into the
  submissions folder, and the comparability key that decides which numbers share a table;
- :mod:`~regen_bench.leaderboard.dataset_check`: checking a result against its dataset (test
  users, targets, critique flags, counts), where the dataset is available;
- :mod:`~regen_bench.leaderboard.tables`: grouping, the paper-style and ranking tables, Markdown;
- :mod:`~regen_bench.leaderboard.html`: the web page (its CSS and JavaScript are package data);
- :mod:`~regen_bench.leaderboard.publish`: render, build and check the published files;
- :mod:`~regen_bench.leaderboard.text_models`: semantic similarity and BERTScore scored again
  from the per-sample texts (``--text-models``: they need their models, so not by default);
- :mod:`~regen_bench.leaderboard.verify`: re-running a result's recorded command.

Every text that reaches a table is escaped; nothing in a submission is ever executed.
"""

from regen_bench.leaderboard.dataset_check import (
    DatasetCheck,
    check_against_dataset,
    submissions_datasets,
)
from regen_bench.leaderboard.publish import DEFAULT_OUT, build, check, render
from regen_bench.leaderboard.submissions import (
    DEFAULT_SUBMISSIONS,
    LeaderboardSpec,
    Submission,
    SubmissionError,
    collect,
    comparability_key,
    load_spec,
    protocol_key,
    result_stem,
    submit,
    validate_result,
    validate_submission,
)
from regen_bench.leaderboard.tables import Group, group_results

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_SUBMISSIONS",
    "DatasetCheck",
    "Group",
    "LeaderboardSpec",
    "Submission",
    "SubmissionError",
    "build",
    "check",
    "check_against_dataset",
    "collect",
    "comparability_key",
    "group_results",
    "load_spec",
    "protocol_key",
    "render",
    "result_stem",
    "submissions_datasets",
    "submit",
    "validate_result",
    "validate_submission",
]
