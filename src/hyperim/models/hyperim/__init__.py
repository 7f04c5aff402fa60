"""HyperIM and what only it can do (shortlist inference for very large label sets)."""

from hyperim.models.hyperim.model import LEGACY_DEFAULTS, HyperIMConfig, HyperIMModel

__all__ = ["LEGACY_DEFAULTS", "HyperIMConfig", "HyperIMModel"]
