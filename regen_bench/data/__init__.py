"""Data model, the REGEN file format and datasets."""

from regen_bench.data.dataset import Catalog, Dataset, UserSequence
from regen_bench.data.placeholders import DEFAULT_CRITIQUE_PLACEHOLDERS, DatasetFile
from regen_bench.data.regen import (
    CRITIQUE_FIELDS,
    ENDORSEMENT_FIELDS,
    DataFormatError,
    ReadReport,
    iter_records,
    write_records,
)
from regen_bench.data.schema import NARRATIVE_TYPES, Interaction, Item, Narratives, UserRecord

__all__ = [
    "CRITIQUE_FIELDS",
    "DEFAULT_CRITIQUE_PLACEHOLDERS",
    "ENDORSEMENT_FIELDS",
    "NARRATIVE_TYPES",
    "Catalog",
    "DataFormatError",
    "Dataset",
    "DatasetFile",
    "Interaction",
    "Item",
    "Narratives",
    "ReadReport",
    "UserRecord",
    "UserSequence",
    "iter_records",
    "write_records",
]
