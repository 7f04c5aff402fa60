"""Pictures of a trained model with matplotlib (PNG or SVG, by the output file's suffix).

:func:`draw_labels` draws a :func:`~hyperim.viz.scene.label_scene` as the paper's Figure 1b /
5: the boundary circle of the Poincaré disk, the hierarchy's edges as geodesic arcs, the
labels coloured by depth (a colour bar), the top-level labels named. For a Euclidean family
(Figure 5b's comparison) the same in the plane of the labels' two principal axes, with
straight edges. :func:`draw_document` adds one document as in Figure 4: its encoded words,
each linked (a geodesic) to its nearest label, the predicted labels highlighted.

Names never pile up: a name is drawn only when its box overlaps no name drawn before
(top-level labels first, nearer the centre first), so hundreds of labels get a readable few.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colors, patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from hyperim.atomic import atomic_write_bytes
from hyperim.errors import HyperIMError
from hyperim.viz import disk

FORMATS = {".png": "png", ".svg": "svg"}
_OUTLINE = [patheffects.withStroke(linewidth=2.5, foreground="white")]


def output_format(path: str | Path) -> str:
    """``"png"`` or ``"svg"`` by the suffix of ``path``; anything else is one error line."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise HyperIMError(f"--out {path}: give a .png or .svg file name")
    return fmt


def _figure(scene: dict[str, Any], window=None) -> tuple[Figure, Any]:
    """The figure and its axes: the Poincaré disk (its boundary circle; zoomed to
    ``window`` = ``(centre, half side)`` when given, with the whole disk inset) or the plane."""
    fig = Figure(figsize=(8.4, 7.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # measures the names' boxes (the same at 100 dpi for SVG)
    ax = fig.add_subplot()
    ax.set_aspect("equal")
    if scene["geometry"] == "poincare":
        theta = np.linspace(0, 2 * np.pi, 400)
        ax.plot(np.cos(theta), np.sin(theta), color="black", lw=1.2, zorder=1)
        ax.set_xlim(-1.04, 1.04)
        ax.set_ylim(-1.04, 1.04)
        ax.set_axis_off()
        if window is not None:
            (cx, cy), half = window
            ax.set_xlim(cx - half, cx + half)
            ax.set_ylim(cy - half, cy + half)
            ax.set_axis_on()
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.15)
            _overview(ax, scene, window)
    else:
        pad = 0.06 * float(np.ptp(scene["xy"], axis=0).max() or 1.0)
        lo, hi = scene["xy"].min(axis=0) - pad, scene["xy"].max(axis=0) + pad
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xlabel("principal axis 1")
        ax.set_ylabel("principal axis 2")
        ax.grid(alpha=0.2)
    return fig, ax


def _overview(ax, scene: dict[str, Any], window) -> None:
    """An inset of the whole disk in the lower left corner, the zoomed view as a square."""
    from matplotlib.patches import Rectangle

    inset = ax.inset_axes((0.01, 0.01, 0.19, 0.19))
    theta = np.linspace(0, 2 * np.pi, 200)
    inset.plot(np.cos(theta), np.sin(theta), color="black", lw=0.8)
    inset.scatter(scene["xy"][:, 0], scene["xy"][:, 1], s=1, color="#1b4f9c", alpha=0.5)
    (cx, cy), half = window
    inset.add_patch(Rectangle((cx - half, cy - half), 2 * half, 2 * half, fill=False, color="red"))
    inset.set_xlim(-1.05, 1.05)
    inset.set_ylim(-1.05, 1.05)
    inset.set_aspect("equal")
    inset.set_xticks([])
    inset.set_yticks([])
    inset.set_facecolor("white")
    inset.set_zorder(10)
    ax.overview = inset  # its box is kept free of names


def _segments(scene: dict[str, Any], pairs: np.ndarray, xy_from, xy_to) -> list[np.ndarray]:
    if scene["geometry"] == "poincare":
        return [disk.geodesic_arc(xy_from[a], xy_to[b], 24) for a, b in pairs]
    return [np.stack([xy_from[a], xy_to[b]]) for a, b in pairs]


def _depth_colours(fig, ax, scene: dict[str, Any], alpha: float = 1.0, size: float = 14):
    depth = scene["depth"]
    top = int(depth.max()) if len(depth) else 0
    cmap = colors.ListedColormap([colors.to_rgba(c) for c in _palette(top + 1)], name="depth")
    norm = colors.BoundaryNorm(np.arange(-0.5, top + 1.5), cmap.N)
    order = np.argsort(-depth, kind="stable")  # top-level labels drawn last, on top
    points = ax.scatter(
        scene["xy"][order, 0],
        scene["xy"][order, 1],
        c=depth[order],
        cmap=cmap,
        norm=norm,
        s=np.where(scene["top_level"][order], size * 2.2, size),
        edgecolors=["black" if t else "none" for t in scene["top_level"][order]],
        linewidths=0.5,
        alpha=alpha,
        zorder=3,
    )
    bar = fig.colorbar(points, ax=ax, shrink=0.6, ticks=range(top + 1), pad=0.01)
    bar.set_label("depth in the hierarchy (0 = top level)")
    bar.solids.set_alpha(1.0)


def _palette(n: int) -> list[str]:
    base = ["#1b4f9c", "#e07b00", "#2a9d3f", "#b8336a", "#7a5195", "#8c6d31", "#555555"]
    return [base[i % len(base)] for i in range(n)]


def _place_names(
    fig, ax, xy: np.ndarray, names: list[str], order: list[int], boxes: list, **text: Any
) -> list[int]:
    """Draw ``names[i]`` at ``xy[i]`` for ``i`` in ``order``, skipping a name whose box would
    overlap one in ``boxes`` (those drawn before, which it extends) or leave the axes;
    returns the indices drawn."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()  # the layout (and so the axes' box) is final
    frame = ax.get_window_extent(renderer)
    drawn = []
    centre = np.mean(ax.get_xlim()), np.mean(ax.get_ylim())
    for i in order:
        x, y = xy[i]
        inward_h = "left" if x < centre[0] else "right"  # towards the centre: inside the disk
        inward_v = "bottom" if y < centre[1] else "top"
        outward_h = "right" if inward_h == "left" else "left"
        outward_v = "top" if inward_v == "bottom" else "bottom"
        for ha, va in (
            (inward_h, inward_v),
            (outward_h, inward_v),
            (inward_h, outward_v),
            (outward_h, outward_v),
        ):
            t = ax.text(
                x,
                y,
                f" {names[i]} ",
                ha=ha,
                va=va,
                path_effects=_OUTLINE,
                zorder=6,
                **{"fontsize": 8.5, **text},
            )
            box = t.get_window_extent(renderer).expanded(1.02, 1.1)
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(b) for b in boxes):
                boxes.append(box)
                drawn.append(i)
                break
            t.remove()
    return drawn


def _window_text(window) -> str:
    (cx, cy), half = window
    return f"x {cx - half:.2f}…{cx + half:.2f}, y {cy - half:.2f}…{cy + half:.2f}"


def _title(ax, scene: dict[str, Any], what: str, subtitle: str | None) -> None:
    ax.set_title(
        f"{what} — {scene['projection']}" + (f"\n{subtitle}" if subtitle else ""),
        fontsize=10,
    )


def _save(fig: Figure, out: str | Path) -> None:
    fmt = output_format(out)

    def write(f):
        fig.savefig(
            f, format=fmt, dpi=100, metadata={"Software": "hyperim"} if fmt == "png" else None
        )

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, write)


def draw_labels(scene: dict[str, Any], out: str | Path, subtitle: str | None = None) -> list[str]:
    """Write the picture of a label scene to ``out`` (.png or .svg); returns the label names
    drawn (top-level labels, as many as fit without overlapping)."""
    fig, ax = _figure(scene)
    xy = scene["xy"]
    if len(scene["edges"]):
        lines = _segments(scene, scene["edges"], xy, xy)
        ax.add_collection(LineCollection(lines, colors="#444444", linewidths=0.5, alpha=0.35))
    _depth_colours(fig, ax, scene)
    named = [int(i) for i in np.flatnonzero(scene["top_level"])]
    named.sort(key=lambda i: (float(np.linalg.norm(xy[i])), i))  # nearer the centre first
    _title(ax, scene, f"{len(xy)} labels", subtitle)  # the layout's final lines, first
    drawn = _place_names(fig, ax, xy, scene["labels"], named, [])
    n_top = len(named)
    shown = f"{len(drawn)} of {n_top} top-level labels named" if len(drawn) < n_top else ""
    what = f"{len(xy)} labels" + (f", {shown}" if shown else "")
    _title(ax, scene, what, subtitle)
    _save(fig, out)
    return [scene["labels"][i] for i in drawn]


def draw_document(
    scene: dict[str, Any], out: str | Path, subtitle: str | None = None
) -> dict[str, list[str]]:
    """Write the picture of a document scene (:func:`~hyperim.viz.scene.document_scene`):
    the labels faint, the document's words linked to their nearest labels, the predicted
    labels highlighted and named with their probabilities. Returns the names drawn:
    ``{"predicted": [...], "nearest": [...], "words": [...]}`` (as many as fit)."""
    xy, words_xy = scene["xy"], scene["word_xy"]
    pred = scene["predicted"]
    nearest = [int(j) for j in dict.fromkeys(scene["nearest"].tolist()) if j not in set(pred)]
    if scene["geometry"] == "euclidean":
        fig, ax = _figure({**scene, "xy": np.concatenate([xy, words_xy])})
        window = None
    else:  # zoomed on the document when the whole disk would show it as a pile
        window = disk.zoom_window(np.concatenate([words_xy, xy[pred], xy[nearest]]))
        fig, ax = _figure(scene, window)
    if len(scene["edges"]):
        lines = _segments(scene, scene["edges"], xy, xy)
        ax.add_collection(LineCollection(lines, colors="#888888", linewidths=0.4, alpha=0.2))
    _depth_colours(fig, ax, scene, alpha=0.35, size=9)
    pairs = np.stack([np.arange(len(words_xy)), scene["nearest"]], axis=1)
    links = _segments(scene, pairs, words_xy, xy)
    ax.add_collection(
        LineCollection(links, colors="#c0392b", linewidths=0.6, alpha=0.45, linestyles="--")
    )
    ax.scatter(
        words_xy[:, 0],
        words_xy[:, 1],
        marker="^",
        s=30,
        color="#f39c12",
        edgecolors="#7e5109",
        linewidths=0.5,
        zorder=4,
        label=r"encoded words $\Theta^w$",
    )
    ax.scatter(
        xy[pred, 0],
        xy[pred, 1],
        marker="*",
        s=220,
        color="#d62728",
        edgecolors="black",
        linewidths=0.6,
        zorder=5,
        label="predicted labels",
    )
    ax.scatter(
        xy[nearest, 0],
        xy[nearest, 1],
        marker="o",
        s=40,
        facecolors="none",
        edgecolors="#c0392b",
        linewidths=1.0,
        zorder=5,
        label="a word's nearest label",
    )
    names = list(scene["labels"])
    for j, p in zip(pred.tolist(), scene["probs"].tolist(), strict=True):
        names[j] = f"{names[j]} {p:.2f}"
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8)
    zoom = f" (zoomed, {_window_text(window)})" if window is not None else ""
    _title(ax, scene, f"{len(words_xy)} words, top {len(pred)} labels{zoom}", subtitle)
    fig.draw_without_rendering()
    inset = getattr(ax, "overview", None)
    boxes = [] if inset is None else [inset.get_window_extent(fig.canvas.get_renderer())]
    drawn_pred = _place_names(
        fig, ax, xy, names, pred.tolist(), boxes, fontsize=9.5, fontweight="bold", color="#a11d1d"
    )
    drawn_near = _place_names(fig, ax, xy, names, nearest, boxes, fontsize=8, color="#6e2c00")
    seen: dict[str, int] = {}
    for i, w in enumerate(scene["words"]):
        if w != "<unk>":
            seen.setdefault(w, i)
    drawn_words = _place_names(
        fig,
        ax,
        words_xy,
        scene["words"],
        list(seen.values()),
        boxes,
        fontsize=8,
        color="#7e5109",
        fontstyle="italic",
    )
    _save(fig, out)
    labels = scene["labels"]
    return {
        "predicted": [labels[j] for j in drawn_pred],
        "nearest": [labels[j] for j in drawn_near],
        "words": [scene["words"][i] for i in drawn_words],
    }
