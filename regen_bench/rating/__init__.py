"""Auto-raters (paper section 3.3): ensemble rating, the majority rule, the bias check."""

from regen_bench.rating.aggregate import SCALE, aggregate
from regen_bench.rating.ensemble import Rater, Scores, SubjectRating, rate_subjects, run_seed
from regen_bench.rating.pipeline import RatingOutcome, dataset_path, make_rater, rate_file
from regen_bench.rating.report import HIGH_SCORE, bias_table, format_bias_table, score_rows
from regen_bench.rating.subjects import (
    NARRATIVE_FIELDS,
    NARRATIVE_GROUPS,
    Subject,
    critique_subjects,
    narrative_subjects,
    negative_samples,
    subjects_for,
)

__all__ = [
    "HIGH_SCORE",
    "NARRATIVE_FIELDS",
    "NARRATIVE_GROUPS",
    "SCALE",
    "Rater",
    "RatingOutcome",
    "Scores",
    "Subject",
    "SubjectRating",
    "aggregate",
    "bias_table",
    "critique_subjects",
    "dataset_path",
    "format_bias_table",
    "make_rater",
    "narrative_subjects",
    "negative_samples",
    "rate_file",
    "rate_subjects",
    "run_seed",
    "score_rows",
    "subjects_for",
]
