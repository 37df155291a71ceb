"""A flame graph as a standalone SVG, drawn from collapsed stacks (``frame;frame;… count``
per line, outermost frame first: py-spy's ``--format raw``).

The picture and any table printed from the same lines are then the same samples. The
layout is the usual one: the root ("all") at the bottom, each frame one row above its
caller, its width proportional to the samples whose stack passes through it, siblings in
alphabetical order (so equal stacks merge), and a ``<title>`` on every frame with its
sample count and share of all samples (a browser shows it on hover). No script, so it
renders the same as an ``<img>`` in a Markdown page.
"""

from __future__ import annotations

import collections
import html
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

ROW = 16  # px per frame row
FONT = 11  # px
CHAR = 6.2  # px per character at FONT, for the labels' truncation
PAD = 10  # px around the graph
TOP = 40  # px for the title and the subtitle
MIN_WIDTH = 1.0  # px: narrower frames (and their callees) are left out of the picture


def split_stack(stack: str) -> list[str]:
    """The frames of one collapsed stack. py-spy's ``--subprocesses`` puts a frame
    ``process <pid>:"<command line>"`` at the root of each process's stacks, and a command
    line may itself contain ``;`` (``python -c "…; spawn_main(…)"``, uvicorn's workers): a
    ``;`` inside that quoted command line does not end the frame."""
    frames: list[str] = []
    for part in stack.split(";"):
        if frames and frames[-1].startswith("process ") and frames[-1].count('"') == 1:
            frames[-1] += ";" + part
        else:
            frames.append(part)
    return frames


def parse(collapsed: str) -> collections.Counter[tuple[str, ...]]:
    """Samples by stack (a tuple of frames, outermost first); lines that are not
    ``stack count`` are skipped, equal stacks summed."""
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            stacks[tuple(split_stack(stack))] += int(n)
    return stacks


@dataclass
class Node:
    name: str
    samples: int = 0
    children: dict[str, Node] = field(default_factory=dict)


def tree(stacks: Mapping[tuple[str, ...], int]) -> Node:
    """The call tree: each node's ``samples`` are those of the stacks through it."""
    root = Node("all")
    for frames, n in stacks.items():
        node = root
        node.samples += n
        for frame in frames:
            node = node.children.setdefault(frame, Node(frame))
            node.samples += n
    return root


@dataclass(frozen=True)
class Box:
    """One drawn frame: ``x`` and ``width`` in px from the graph's left edge, ``depth`` 0 for
    the root."""

    name: str
    samples: int
    depth: int
    x: float
    width: float


def layout(root: Node, width: float) -> list[Box]:
    """The frames' boxes for a graph ``width`` px wide, callers before callees."""
    if root.samples == 0:
        return []
    scale = width / root.samples
    boxes: list[Box] = []
    todo = [(root, 0, 0.0)]
    while todo:
        node, depth, x = todo.pop()
        w = node.samples * scale
        if w < MIN_WIDTH:
            continue
        boxes.append(Box(node.name, node.samples, depth, x, w))
        cx = x
        for name in sorted(node.children):
            child = node.children[name]
            todo.append((child, depth + 1, cx))
            cx += child.samples * scale
    boxes.sort(key=lambda b: (b.depth, b.x))
    return boxes


def warm_colour(name: str) -> str:
    """flamegraph.pl's default palette (reds to yellows), stable per frame name."""
    h = zlib.crc32(name.encode())
    return f"rgb({205 + h % 50},{(h >> 8) % 230},{(h >> 16) % 55})"


def render(
    stacks: Mapping[tuple[str, ...], int],
    *,
    title: str,
    subtitle: str = "",
    width: int = 1200,
    colour: Callable[[str], str] = warm_colour,
    legend: Iterable[tuple[str, str]] = (),
) -> str:
    """The SVG text of the flame graph of ``stacks``; ``colour`` names a fill for a frame,
    ``legend`` adds (label, fill) swatches under the title."""
    root = tree(stacks)
    total = root.samples
    graph_w = width - 2 * PAD
    boxes = layout(root, graph_w)
    depth = max((b.depth for b in boxes), default=0) + 1
    height = TOP + depth * ROW + 2 * PAD
    esc = html.escape
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Verdana, sans-serif" '
        f'font-size="{FONT}">',
        '<rect width="100%" height="100%" fill="#f8f8f0"/>',
        f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" font-size="15">{esc(title)}</text>',
        f'<text x="{PAD}" y="34" fill="#555">{esc(subtitle)}</text>',
    ]
    lx = float(width - PAD)
    for label, fill in reversed(list(legend)):
        tw = len(label) * CHAR
        lx -= tw + 18
        out.append(
            f'<rect x="{lx:.1f}" y="25" width="10" height="10" fill="{fill}"/>'
            f'<text x="{lx + 13:.1f}" y="34">{esc(label)}</text>'
        )
    for b in boxes:
        y = height - PAD - (b.depth + 1) * ROW
        share = 100 * b.samples / total
        fill = "#d0d0d0" if b.depth == 0 else colour(b.name)
        tip = f"{b.name} ({b.samples} samples, {share:.2f}%)"
        out.append(f"<g><title>{esc(tip)}</title>")
        out.append(
            f'<rect x="{PAD + b.x:.2f}" y="{y}" width="{b.width:.2f}" height="{ROW - 1}" '
            f'fill="{fill}" rx="2"/>'
        )
        fits = int((b.width - 4) / CHAR)
        if fits >= 3:
            label = b.name if len(b.name) <= fits else b.name[: fits - 2] + ".."
            out.append(f'<text x="{PAD + b.x + 3:.2f}" y="{y + ROW - 4}">{esc(label)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
