"""Data layer: reading datasets and hierarchies, tokenising, vocabularies and label indices."""

from hyperim.data.hierarchy import Hierarchy, read_hierarchy
from hyperim.data.lines import DataReport
from hyperim.data.reader import (
    Dataset,
    DatasetFiles,
    Document,
    bundled_dataset_path,
    find_dataset_files,
    iter_documents,
    load_dataset,
    read_documents,
    token_length_stats,
    tokenize,
)
from hyperim.data.vocab import LabelIndex, Vocabulary

__all__ = [
    "DataReport",
    "Dataset",
    "DatasetFiles",
    "Document",
    "Hierarchy",
    "LabelIndex",
    "Vocabulary",
    "bundled_dataset_path",
    "find_dataset_files",
    "iter_documents",
    "load_dataset",
    "read_documents",
    "read_hierarchy",
    "token_length_stats",
    "tokenize",
]
