"""hyperim: Hyperbolic Interaction Model for hierarchical multi-label text classification."""

__version__ = "0.1.0"

__all__ = ["HyperIM", "__version__"]


def __getattr__(name: str):
    if name == "HyperIM":
        from hyperim.api import HyperIM

        return HyperIM
    raise AttributeError(name)
