"""Run the prediction server: load a model and its hierarchy, bind, serve on uvicorn."""

from __future__ import annotations

import socket
from pathlib import Path

from hyperim.api import HyperIM
from hyperim.data.hierarchy import Hierarchy, read_hierarchy
from hyperim.errors import HyperIMError


def find_hierarchy(model: HyperIM, given: str | Path | None = None) -> Path | None:
    """The hierarchy file of ``model``: ``given``, else ``hierarchy.tsv`` in the data folder it
    was trained on (``meta["data"]``), else None (the folder moved or was never recorded)."""
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise HyperIMError(f"--hierarchy {path}: file not found")
        return path
    data = model.meta.get("data")
    if not isinstance(data, str):
        return None
    path = Path(data) / "hierarchy.tsv"
    return path if path.is_file() else None


def load_hierarchy(path: Path | None) -> Hierarchy | None:
    return None if path is None else read_hierarchy(path)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (so a busy port is one clear line, not a log)."""
    if not 0 <= port <= 65535:
        raise HyperIMError(f"--port must be in 0..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise HyperIMError(f"--host {host!r}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise HyperIMError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    return sock


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    hierarchy: str | Path | None = None,
    max_body_bytes: int = 1 << 20,
    batch_window_ms: float = 5.0,
    max_batch: int = 64,
    device: str = "cpu",
    log_level: str = "warning",
    on_ready=None,
) -> None:
    """Serve ``model_dir`` until interrupted; ``on_ready(host, port)`` once listening."""
    import uvicorn

    from hyperim.serve.app import create_app

    if max_body_bytes < 1:
        raise HyperIMError("--max-body must be >= 1 byte")
    if batch_window_ms < 0 or max_batch < 1:
        raise HyperIMError("--batch-window-ms must be >= 0 and --max-batch >= 1")
    model = HyperIM.from_pretrained(model_dir, device=device)
    hierarchy_path = find_hierarchy(model, hierarchy)
    app = create_app(
        model,
        load_hierarchy(hierarchy_path),
        hierarchy_path,
        max_body_bytes=max_body_bytes,
        batch_window_ms=batch_window_ms,
        max_batch=max_batch,
    )
    sock = bind(host, port)
    if on_ready is not None:
        on_ready(host, sock.getsockname()[1])
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
