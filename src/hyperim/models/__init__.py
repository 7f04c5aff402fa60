"""Model families behind one protocol (:mod:`hyperim.models.base`), found by name in
:mod:`hyperim.models.registry`."""

from hyperim.models.base import ModelConfig, TextModel, TrainingData
from hyperim.models.hyperim import HyperIMConfig, HyperIMModel
from hyperim.models.registry import Family, family_names, get_family

__all__ = [
    "Family",
    "HyperIMConfig",
    "HyperIMModel",
    "ModelConfig",
    "TextModel",
    "TrainingData",
    "family_names",
    "get_family",
]
