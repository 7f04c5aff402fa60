"""The prediction server: ``hyperim serve --model RUN`` (REST API, web page; see :mod:`.app`)."""

from hyperim.serve.app import create_app
from hyperim.serve.runner import serve

__all__ = ["create_app", "serve"]
