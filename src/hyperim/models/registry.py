"""Model families by name: ``"hyperim" -> (HyperIMModel, HyperIMConfig)``, ...

Adding a family is one module and one line in :data:`FAMILIES`; nothing else in the library
branches on a family's name. Entries are imported lazily, so listing the families is cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hyperim.errors import HyperIMError

if TYPE_CHECKING:
    from hyperim.models.base import ModelConfig, TextModel

#: name -> (module, model class, one-line description)
FAMILIES: dict[str, tuple[str, str, str]] = {
    "hyperim": (
        "hyperim.models.hyperim",
        "HyperIMModel",
        "HyperIM: words and labels in a product of Poincaré balls, hyperbolic GRU (the paper's)",
    ),
    "euclidean": (
        "hyperim.models.euclidean",
        "EuclideanIMModel",
        "EuclideanIM: the same architecture in R^k with a standard GRU (the paper's ablation)",
    ),
    "sleec": (
        "hyperim.models.sleec",
        "SLEECModel",
        "SLEEC: local label-vector embeddings, k-nearest-neighbour votes, an ensemble (baseline)",
    ),
    "exam": (
        "hyperim.models.exam",
        "EXAMModel",
        "EXAM: BiGRU words · random class embeddings, an MLP over positions (a baseline)",
    ),
    "dxml": (
        "hyperim.models.dxml",
        "DXMLModel",
        "DXML: DeepWalk label vectors, documents mapped into their space by an MLP (baseline)",
    ),
    "hrdgcnn": (
        "hyperim.models.hrdgcnn",
        "HRDGCNNModel",
        "HR-DGCNN: graph-of-words CNN, recursive regularisation over the hierarchy (baseline)",
    ),
    "hmcnf": (
        "hyperim.models.hmcnf",
        "HMCNFModel",
        "HMCN-F: one global and one local layer per hierarchy level on XML-CNN features",
    ),
}

DEFAULT_FAMILY = "hyperim"


@dataclass(frozen=True)
class Family:
    name: str
    model_class: type[TextModel]
    config_class: type[ModelConfig]
    description: str


def family_names() -> list[str]:
    return list(FAMILIES)


def get_family(name: str) -> Family:
    """The family registered as ``name``; a :class:`HyperIMError` naming the known ones."""
    if name not in FAMILIES:
        raise HyperIMError(f"unknown model {name!r}; choose from {', '.join(FAMILIES)}")
    module, cls_name, description = FAMILIES[name]
    cls = getattr(importlib.import_module(module), cls_name)
    return Family(name, cls, cls.config_class, description)
