"""Models: HyperIM (forward -> (logits, loss))."""

from hyperim.models.hyperim import HyperIMModel, ModelConfig

__all__ = ["HyperIMModel", "ModelConfig"]
