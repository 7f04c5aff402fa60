"""``hyperim serve``: the REST API through HTTP against a real server process on 127.0.0.1
(started and stopped here), bad requests, concurrency, the web page and the docs, and the page
in headless Chromium (skipped, saying why, where Chromium is not installed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from hyperim.api import HyperIM
from hyperim.config import TrainConfig
from hyperim.train import train

SRC = Path(__file__).resolve().parents[1] / "src"
TEXTS = [
    "the cat and a kitten meow",
    "a puppy with a dog bark",
    "saw blade to cut some data",
    "drill bit and bore",
    "the kitten with a drill",
    "package of dog and saw",
    "meow",
    "",
]


@pytest.fixture(scope="module")
def run_dir(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("serve") / "run"
    cfg = TrainConfig.of(
        model="hyperim", n_balls=4, ball_dim=2, label_init="random", word_init="random",
        max_len=24, min_count=1, batch_size=16, lr=1e-2, negatives=3, epochs=2,
    )  # fmt: skip
    train(tiny_dataset, run, cfg, progress=False)
    return run


@pytest.fixture(scope="module")
def model(run_dir: Path) -> HyperIM:
    return HyperIM.from_pretrained(run_dir)


def start_server(run: Path, log: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``python -m hyperim serve --port 0`` on 127.0.0.1; waits for /v1/health."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "HYPERIM_COMPILE": "0"}
    with open(log, "wb") as out:  # a file, not a pipe: a chatty server never blocks on it
        proc = subprocess.Popen(
            [sys.executable, "-m", "hyperim", "serve", "--model", str(run), "--port", "0", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log.read_text()}")
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
        if found:
            url = f"http://127.0.0.1:{found.group(1)}"
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not come up: {log.read_text()}")


@pytest.fixture(scope="module")
def server(run_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    # a 20 ms window makes concurrent requests batch even on a busy machine
    proc, url = start_server(run_dir, log, "--batch-window-ms", "20", "--max-body", "100000")
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    text = log.read_text()
    assert "Traceback" not in text, text


def check_results(results: list[dict], model: HyperIM, k: int, threshold: float = 0.0) -> None:
    assert len(results) <= k
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(threshold <= s <= 1 for s in scores)
    assert all(r["label"] in model.labels.labels for r in results)
    assert len({r["label"] for r in results}) == len(results)


# ------------------------------------------------------------------------------ endpoints
def test_health(server: httpx.Client, model: HyperIM) -> None:
    r = server.get("/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["model_type"] == "hyperim"
    assert body["labels"] == len(model.labels)


def test_suggest_is_the_models_prediction(server: httpx.Client, model: HyperIM) -> None:
    text = TEXTS[0]
    r = server.post("/v1/suggest", json={"text": text, "k": 3, "evidence": 2})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    check_results(results, model, 3)
    [expected] = model.predict([text], k=3, evidence=2)
    assert [x["label"] for x in results] == [p.label for p in expected]
    assert [x["score"] for x in results] == pytest.approx([p.probability for p in expected])
    assert [x["evidence"] for x in results] == [p.evidence for p in expected]
    assert all(set(x["evidence"]) <= set(text.split()) and len(x["evidence"]) <= 2 for x in results)


def test_suggest_defaults_threshold_and_limit(server: httpx.Client, model: HyperIM) -> None:
    default = server.post("/v1/suggest", json={"text": TEXTS[1]}).json()["results"]
    assert len(default) == min(10, len(model.labels))  # Annif's default limit, threshold 0
    assert all(len(x["evidence"]) <= 3 for x in default)
    cut = default[len(default) // 2]["score"]
    above = server.post("/v1/suggest", json={"text": TEXTS[1], "threshold": cut}).json()
    check_results(above["results"], model, 10, cut)
    assert [x["label"] for x in above["results"]] == [
        x["label"] for x in default if x["score"] >= cut
    ]
    limit = server.post("/v1/suggest", json={"text": TEXTS[1], "limit": 2}).json()["results"]
    assert [x["label"] for x in limit] == [x["label"] for x in default[:2]]  # Annif's name
    huge = server.post("/v1/suggest", json={"text": TEXTS[1], "k": 10**6}).json()["results"]
    assert len(huge) == len(model.labels)  # k beyond the labels: all of them
    none = server.post("/v1/suggest", json={"text": TEXTS[1], "evidence": 0}).json()["results"]
    assert all(x["evidence"] == [] for x in none)


def test_suggest_batch(server: httpx.Client, model: HyperIM) -> None:
    docs = [{"text": t, "document_id": f"doc-{i}"} for i, t in enumerate(TEXTS)]
    docs[1]["document_id"] = 7  # ids are echoed as given, or null when absent
    del docs[2]["document_id"]
    r = server.post("/v1/suggest-batch", json={"documents": docs, "k": 4})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert [a["document_id"] for a in answer] == [d.get("document_id") for d in docs]
    for doc, a in zip(docs, answer, strict=True):
        check_results(a["results"], model, 4)
        single = server.post("/v1/suggest", json={"text": doc["text"], "k": 4}).json()
        assert [x["label"] for x in a["results"]] == [x["label"] for x in single["results"]]
        assert [x["score"] for x in a["results"]] == pytest.approx(
            [x["score"] for x in single["results"]], abs=1e-5
        )


def test_concurrent_requests_batch_and_match_one_by_one(server: httpx.Client) -> None:
    requests = [{"text": t, "k": 1 + i % 5, "evidence": i % 4} for i, t in enumerate(TEXTS * 4)]
    alone = [server.post("/v1/suggest", json=q).json()["results"] for q in requests]
    before = server.get("/v1/health").json()
    base = str(server.base_url)

    def ask(q: dict) -> list[dict]:
        r = httpx.post(f"{base}/v1/suggest", json=q, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["results"]

    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(ask, requests))
    after = server.get("/v1/health").json()
    for one, many in zip(alone, together, strict=True):
        assert [x["label"] for x in many] == [x["label"] for x in one]
        assert [x["evidence"] for x in many] == [x["evidence"] for x in one]
        assert [x["score"] for x in many] == pytest.approx([x["score"] for x in one], abs=1e-5)
    documents = after["documents"] - before["documents"]
    batches = after["batches"] - before["batches"]
    assert documents == len(requests)
    assert batches < documents  # some requests were scored together


def test_labels_with_hierarchy(server: httpx.Client, model: HyperIM, tiny_dataset: Path) -> None:
    r = server.get("/v1/labels")
    assert r.status_code == 200
    body = r.json()
    assert body["hierarchy"] == str(tiny_dataset.resolve() / "hierarchy.tsv")
    table = {x["label"]: x for x in body["labels"]}
    assert [x["label"] for x in body["labels"]] == model.labels.labels
    assert table["animal"] == {"label": "animal", "parents": [], "depth": 0}
    assert table["animal::cat"] == {"label": "animal::cat", "parents": ["animal"], "depth": 1}
    assert table["tool::drill"]["parents"] == ["tool"]


def test_labels_without_hierarchy(model: HyperIM) -> None:
    """A model whose training data moved: labels without parents or depth, no error (the app
    in-process, its lifespan run by hand)."""
    import asyncio

    from hyperim.serve import create_app

    async def ask() -> tuple[dict, int]:
        app = create_app(model, None)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                labels = (await client.get("/v1/labels")).json()
                suggest = await client.post("/v1/suggest", json={"text": "cat"})
                return labels, suggest.status_code

    body, status = asyncio.run(ask())
    assert status == 200
    assert body["hierarchy"] is None
    assert [x["label"] for x in body["labels"]] == model.labels.labels
    assert all(x["parents"] == [] and x["depth"] is None for x in body["labels"])


def test_find_hierarchy_degrades(model: HyperIM, tmp_path: Path) -> None:
    from hyperim.errors import HyperIMError
    from hyperim.serve.runner import find_hierarchy

    assert find_hierarchy(model) == Path(model.meta["data"]) / "hierarchy.tsv"
    moved = HyperIM(model.model, model.vocab, model.labels, meta={"data": str(tmp_path)})
    assert find_hierarchy(moved) is None
    assert find_hierarchy(HyperIM(model.model, model.vocab, model.labels)) is None
    with pytest.raises(HyperIMError, match="file not found"):
        find_hierarchy(model, tmp_path / "nope.tsv")


# ------------------------------------------------------------------------------ bad requests
BAD_JSON = [
    ("invalid JSON", b'{"text": ', 400, "invalid JSON"),
    ("not an object", b"[1, 2]", 422, "JSON object"),
    ("missing text", b'{"k": 3}', 422, "text: field required"),
    ("k zero", b'{"text": "cat", "k": 0}', 422, "k:"),
    ("k negative", b'{"text": "cat", "k": -2}', 422, "k:"),
    ("k a string", b'{"text": "cat", "k": "3"}', 422, "k:"),
    ("k a float", b'{"text": "cat", "k": 2.5}', 422, "k:"),
    ("k a bool", b'{"text": "cat", "k": true}', 422, "k:"),
    ("text a number", b'{"text": 5}', 422, "text:"),
    ("text null", b'{"text": null}', 422, "text:"),
    ("threshold above 1", b'{"text": "cat", "threshold": 1.5}', 422, "threshold:"),
    ("threshold below 0", b'{"text": "cat", "threshold": -0.1}', 422, "threshold:"),
    ("threshold a string", b'{"text": "cat", "threshold": "0.5"}', 422, "threshold:"),
    ("evidence negative", b'{"text": "cat", "evidence": -1}', 422, "evidence:"),
    ("unknown field", b'{"text": "cat", "lang": "en"}', 422, "lang:"),
]


def assert_one_line_error(r: httpx.Response, status: int, says: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"]
    assert "\n" not in body["error"] and body["error"]
    assert says in body["error"]


@pytest.mark.parametrize(("case", "body", "status", "says"), BAD_JSON, ids=[b[0] for b in BAD_JSON])
def test_bad_suggest_request(
    server: httpx.Client, case: str, body: bytes, status: int, says: str
) -> None:
    r = server.post("/v1/suggest", content=body, headers={"content-type": "application/json"})
    assert_one_line_error(r, status, says)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"documents": []}, "documents:"),
        ({"documents": [{"text": "cat"}] * 33}, "documents:"),
        ({"documents": [{"document_id": "a"}]}, "documents.0.text: field required"),
        ({"documents": "cat"}, "documents:"),
        ({"text": "cat"}, "documents: field required"),
        ({"documents": [{"text": "cat"}], "k": 0}, "k:"),
        ({"documents": [{"text": "cat"}], "threshold": 2}, "threshold:"),
    ],
)
def test_bad_batch_request(server: httpx.Client, body: dict, says: str) -> None:
    assert_one_line_error(server.post("/v1/suggest-batch", json=body), 422, says)


def test_form_body_is_refused(server: httpx.Client) -> None:
    r = server.post("/v1/suggest", data={"text": "cat"})  # Annif's form fields: not here
    assert_one_line_error(r, 422, "JSON object")


def test_big_body_is_refused_before_it_is_read(server: httpx.Client) -> None:
    big = json.dumps({"text": "cat " * (10 * 2**20 // 4)}).encode()  # 10 MB
    # with Content-Length: refused from the header
    assert_one_line_error(
        server.post("/v1/suggest", content=big, headers={"content-type": "application/json"}),
        413,
        "larger than 100000 bytes",
    )

    def chunks():  # chunked, no Content-Length: refused once the bytes pass the limit
        for lo in range(0, len(big), 65536):
            yield big[lo : lo + 65536]

    assert_one_line_error(server.post("/v1/suggest", content=chunks()), 413, "larger than")
    # just under the limit is fine
    small = {"text": "cat " * 20000}
    assert len(json.dumps(small)) < 100000
    assert server.post("/v1/suggest", json=small).status_code == 200


def test_unknown_path_and_method(server: httpx.Client) -> None:
    assert_one_line_error(server.get("/v1/nope"), 404)
    assert_one_line_error(server.delete("/v1/health"), 405)
    assert_one_line_error(server.get("/v1/suggest"), 405)


def test_still_healthy_after_bad_requests(server: httpx.Client) -> None:
    """Run after the bad requests above (tests run in file order): the server still answers."""
    assert server.get("/v1/health").json()["status"] == "ok"
    assert server.post("/v1/suggest", json={"text": "cat"}).status_code == 200


# ------------------------------------------------------------------------------ the disk
def test_disk_labels(server: httpx.Client, model: HyperIM, tiny_dataset: Path) -> None:
    from hyperim.data import read_hierarchy
    from hyperim.viz import disk

    r = server.get("/v1/disk/labels")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["geometry"] == "poincare" and body["ball"] in range(4)
    assert [p["label"] for p in body["points"]] == model.labels.labels  # one point a label
    assert all(p["x"] ** 2 + p["y"] ** 2 < 1 for p in body["points"])
    edges, depth, top = disk.hierarchy_arrays(
        model.labels.labels, read_hierarchy(tiny_dataset / "hierarchy.tsv")
    )
    assert len(body["edges"]) == len(edges) > 0
    assert [p["depth"] for p in body["points"]] == depth.tolist()
    assert [p["top"] for p in body["points"]] == top.tolist()
    weight = model.model.labels.weight.detach().double().numpy()[:, body["ball"]]
    for point, (x, y) in zip(body["points"], weight, strict=True):  # SVG: y flipped
        assert (point["x"], point["y"]) == pytest.approx((x, -y), abs=1e-4)
    for d, (a, b) in zip(body["edges"], edges, strict=True):  # from the parent to the child
        start, end = body["points"][a], body["points"][b]
        assert d.startswith(f"M{start['x']} {start['y']}") and d.endswith(f"{end['x']} {end['y']}")


def test_disk_document(server: httpx.Client, model: HyperIM) -> None:
    text = "the cat and a kitten meow with a drill bit"
    r = server.post("/v1/disk", json={"text": text, "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = model._encode([text])[0].tolist()
    assert [w["word"] for w in body["words"]] == [model.vocab.tokens[i] for i in ids]
    assert len(body["words"]) == len(ids) > 0  # one point a token the model reads
    assert all(w["nearest"] in model.labels.labels for w in body["words"])
    assert all(w["x"] ** 2 + w["y"] ** 2 < 1 for w in body["words"])
    [expected] = model.predict([text], k=3, evidence=0)
    assert [p["label"] for p in body["predicted"]] == [p.label for p in expected]
    assert [model.labels.labels[p["index"]] for p in body["predicted"]] == [
        p.label for p in expected
    ]
    assert body["ball"] == server.get("/v1/disk/labels").json()["ball"]


def test_arc_path_is_the_geodesic() -> None:
    """The SVG arc's circle and direction carry the geodesic (its hyperbolic midpoint)."""
    import numpy as np

    from hyperim.serve.disk import arc_path
    from hyperim.viz import disk

    rng = np.random.default_rng(0)
    for _ in range(200):
        p, q = (disk.clip_to_ball(rng.uniform(-0.7, 0.7, 2)) for _ in range(2))
        d = arc_path(p, q)
        assert d.startswith("M")
        if "L" in d:
            assert abs(p[0] * q[1] - p[1] * q[0]) < 1e-2  # (nearly) a diameter
            continue
        radius, sweep = float(d.split("A")[1].split()[0]), int(d.split()[5])
        centre, r = disk.geodesic_circle(p, q)
        assert radius == pytest.approx(r, abs=1e-4)
        mid = disk.geodesic_arc(p, q, 33)[16]
        assert np.linalg.norm(mid - centre) == pytest.approx(r, rel=1e-6)
        # SVG's sweep 1: from p to q in the positive-angle direction about the centre; the
        # short arc that way passes the midpoint exactly when p→mid turns the same way
        turn = (p - centre)[0] * (mid - centre)[1] - (p - centre)[1] * (mid - centre)[0]
        assert sweep == (1 if turn > 0 else 0)
    assert arc_path(np.array([0.1, 0.0]), np.array([0.5, 0.0])).count("L") == 1
    assert "A" not in arc_path(np.array([0.1, 0.2]), np.array([0.5, 0.1]), "euclidean")


BAD_DISK = [
    ("invalid JSON", b'{"text": ', 400, "invalid JSON"),
    ("missing text", b'{"k": 3}', 422, "text: field required"),
    ("k zero", b'{"text": "cat", "k": 0}', 422, "k:"),
    ("k a string", b'{"text": "cat", "k": "3"}', 422, "k:"),
    ("text a number", b'{"text": 5}', 422, "text:"),
    ("unknown field", b'{"text": "cat", "threshold": 0.5}', 422, "threshold:"),
    ("no words", b'{"text": ""}', 422, "text: the text has no words"),
    ("not an object", b'"cat"', 422, "JSON object"),
]


@pytest.mark.parametrize(("case", "body", "status", "says"), BAD_DISK, ids=[b[0] for b in BAD_DISK])
def test_bad_disk_request(
    server: httpx.Client, case: str, body: bytes, status: int, says: str
) -> None:
    r = server.post("/v1/disk", content=body, headers={"content-type": "application/json"})
    assert_one_line_error(r, status, says)


def test_family_without_a_disk_is_one_line(model: HyperIM) -> None:
    """A family with no label embeddings: 409 and its reason on both endpoints; suggest
    works. One whose labels are vectors but whose words are not in their space: the labels,
    and 409 for a document."""
    import asyncio

    import torch

    from hyperim.serve import create_app

    class NoLabels(torch.nn.Module):  # what the disk reads of a model: nothing to draw
        model_type, n_labels = "sleec", len(model.labels)
        words_in_label_space = False

        def label_points(self):
            return None

    class VectorLabels(NoLabels):
        model_type = "exam"

        def __init__(self) -> None:
            super().__init__()
            self.labels = torch.nn.Parameter(torch.randn(len(model.labels), 5))

        def label_points(self):
            return "euclidean", self.labels

    async def ask(inner: torch.nn.Module) -> list[httpx.Response]:
        app = create_app(HyperIM(inner, model.vocab, model.labels), None)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return [
                    await client.get("/v1/disk/labels"),
                    await client.post("/v1/disk", json={"text": "cat"}),
                ]

    labels, document = asyncio.run(ask(NoLabels()))
    assert_one_line_error(labels, 409, "no label embeddings")
    assert_one_line_error(document, 409, "no label embeddings")
    labels, document = asyncio.run(ask(VectorLabels()))
    assert labels.status_code == 200 and labels.json()["geometry"] == "euclidean"
    assert len(labels.json()["points"]) == len(model.labels)
    assert all(abs(p["x"]) <= 0.95 + 1e-4 for p in labels.json()["points"])
    assert_one_line_error(document, 409, "not points of its labels' space")


# ------------------------------------------------------------------------------ page and docs
def test_page_and_its_assets_are_local(server: httpx.Client) -> None:
    page = server.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {"/static/app.js", "/static/disk.js", "/static/style.css"} <= set(assets)
    for path in assets:
        if path.startswith("data:"):  # inline (the empty favicon)
            continue
        assert path.startswith("/"), f"{path}: the page must load nothing from outside"
        r = server.get(path)
        assert r.status_code == 200, path
        code = r.text.replace("http://www.w3.org/2000/svg", "")  # a namespace, not a fetch
        assert not re.search(r"https?://", code), f"{path} refers outside"
    assert 'id="text"' in page.text and 'id="suggest"' in page.text and 'id="results"' in page.text


def test_openapi_docs_are_local(server: httpx.Client) -> None:
    spec = server.get("/openapi.json").json()
    assert {"/v1/suggest", "/v1/suggest-batch", "/v1/labels", "/v1/health"} <= set(spec["paths"])
    docs = server.get("/docs")
    assert docs.status_code == 200
    for path in re.findall(r'(?:src|href)="([^"]+)"', docs.text) + re.findall(
        r"url: '([^']+)'", docs.text
    ):
        assert path.startswith("/"), f"/docs loads {path} from outside"
        assert server.get(path).status_code == 200, path


# ------------------------------------------------------------------------------ CLI errors
def test_cli_busy_port_and_bad_model_are_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from hyperim.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as e:
            main(["serve", "--model", str(run_dir), "--port", str(port)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hyperim: error: cannot listen on 127.0.0.1:{port}") and "\n" not in err
    for argv in (
        ["serve", "--model", str(tmp_path / "none")],
        ["serve", "--model", str(run_dir), "--max-body", "0"],
        ["serve", "--model", str(run_dir), "--port", "70000"],
        ["serve", "--model", str(run_dir), "--hierarchy", str(tmp_path / "h.tsv")],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("hyperim: error:") and "\n" not in err, err


# ------------------------------------------------------------------------------ the browser
def _chromium() -> tuple[str, str] | None:
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def open_page(url: str, size: tuple[int, int] = (1280, 900)):
    """A headless Chromium (Debian's ``chromium`` + ``chromium-driver``) on ``url``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = _chromium()  # type: ignore[misc]
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    chrome.get(url)
    return chrome


def test_page_in_headless_chromium(server: httpx.Client, tmp_path: Path) -> None:
    """Type a text, press the button: the labels appear, evidence words are marked in the text,
    the disk has a point for each label and each word of the text."""
    pytest.importorskip("selenium", reason="selenium is not installed")
    if _chromium() is None:
        pytest.skip("Chromium not installed (Debian: apt-get install chromium chromium-driver)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    text = "the cat and a kitten meow with a drill bit"
    expected = server.post("/v1/suggest", json={"text": text, "k": 4}).json()["results"]
    chrome = open_page(str(server.base_url))
    try:
        wait = WebDriverWait(chrome, 30)
        wait.until(ec.text_to_be_present_in_element((By.ID, "model-info"), "hyperim model"))
        box = chrome.find_element(By.ID, "text")
        box.send_keys(text)
        k = chrome.find_element(By.ID, "k")
        k.clear()
        k.send_keys("4")
        chrome.find_element(By.ID, "suggest").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results li.result")) == 4)
        items = chrome.find_elements(By.CSS_SELECTOR, "#results li.result")
        assert [li.get_attribute("data-label") for li in items] == [x["label"] for x in expected]
        marked = {
            m.text.lower() for m in chrome.find_elements(By.CSS_SELECTOR, "#highlighted mark")
        }
        evidence = {w for x in expected for w in x["evidence"]}
        assert marked == evidence and marked  # every evidence word, and only those, is marked
        assert chrome.find_element(By.ID, "highlighted").text == text
        assert not chrome.find_element(By.ID, "error").is_displayed()
        # the disk: one point a label, one a token the model reads, the 4 labels ringed
        n_words = len(server.post("/v1/disk", json={"text": text}).json()["words"])
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#disk rect.word-point"))
        assert len(chrome.find_elements(By.CSS_SELECTOR, "#disk circle.label-point")) == len(
            server.get("/v1/labels").json()["labels"]
        )
        assert len(chrome.find_elements(By.CSS_SELECTOR, "#disk rect.word-point")) == n_words
        ringed = chrome.find_elements(By.CSS_SELECTOR, "#disk circle.label-point.predicted")
        assert sorted(c.get_attribute("data-label") for c in ringed) == sorted(
            x["label"] for x in expected
        )
        names = chrome.find_elements(By.CSS_SELECTOR, "#disk text.name.predicted")
        assert sorted(t.text for t in names) == sorted(x["label"] for x in expected)
        assert chrome.find_elements(By.CSS_SELECTOR, "#disk .boundary")
        shot = tmp_path / "page.png"
        chrome.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        # a bad request shows its one-line error on the page
        chrome.execute_script(  # past the form's own check (max=1), to the server's
            "const t = document.getElementById('threshold'); t.removeAttribute('max');"
            "t.value = '7';"
        )
        chrome.find_element(By.ID, "suggest").click()
        wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
        assert "threshold" in chrome.find_element(By.ID, "error").text
        logs = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
        assert len(logs) == 1 and "/v1/suggest" in logs[0]["message"], logs  # only the 422
    finally:
        chrome.quit()
