"""Neural-network layers of HyperIM, one concept per module."""

from hyperim.nn.embedding import HyperbolicEmbedding
from hyperim.nn.gru import HyperbolicGRU
from hyperim.nn.head import PredictionHead
from hyperim.nn.interaction import Interaction

__all__ = ["HyperbolicEmbedding", "HyperbolicGRU", "Interaction", "PredictionHead"]
