"""benchmarks/flame_svg.py draws earn_flame's flame graph from the collapsed stacks the
by-library table is summed from (issue 11): frames must nest under their callers, be as
wide as their samples, and say their counts, or the picture misleads."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import flame_svg

WORKER = 'process 7:"python -c from multiprocessing.spawn import spawn_main; spawn_main(fd=3)"'
SAMPLE = "\n".join(
    [
        'process 1:"python -m loyalist.serve";' + WORKER + ";main (a.py:1);f (b.py:2) 6",
        'process 1:"python -m loyalist.serve";' + WORKER + ";main (a.py:1);g (b.py:3) 2",
        'process 1:"python -m loyalist.serve";' + WORKER + ";main (a.py:1);f (b.py:2) 1",
        'process 1:"python -m loyalist.serve";main (a.py:1) 1',
        "garbage",
    ]
)


def titles(svg: str) -> dict[str, str]:
    return {t.rsplit(" (", 1)[0]: t for t in re.findall(r"<title>(.*?)</title>", svg)}


def test_a_semicolon_in_a_process_command_line_does_not_split_the_frame() -> None:
    frames = flame_svg.split_stack('process 1:"x";' + WORKER + ";main (a.py:1)")
    assert frames == ['process 1:"x"', WORKER, "main (a.py:1)"]


def test_equal_stacks_are_summed_and_other_lines_skipped() -> None:
    stacks = flame_svg.parse(SAMPLE)
    assert sum(stacks.values()) == 10
    assert (
        stacks[('process 1:"python -m loyalist.serve"', WORKER, "main (a.py:1)", "f (b.py:2)")] == 7
    )
    assert len(stacks) == 3


def test_frames_nest_and_are_as_wide_as_their_samples() -> None:
    boxes = flame_svg.layout(flame_svg.tree(flame_svg.parse(SAMPLE)), 1000)
    by_name = {(b.name, b.depth): b for b in boxes}
    root = by_name[("all", 0)]
    assert (root.x, root.width, root.samples) == (0, 1000, 10)
    worker = by_name[(WORKER, 2)]
    main = by_name[("main (a.py:1)", 3)]
    f, g = by_name[("f (b.py:2)", 4)], by_name[("g (b.py:3)", 4)]
    assert worker.width == 900 and main.width == 900  # 9 of 10 samples
    assert f.width == 700 and g.width == 200
    for child, parent in ((main, worker), (f, main), (g, main)):  # inside the caller
        assert parent.x <= child.x and child.x + child.width <= parent.x + parent.width + 1e-9
    assert f.x + f.width <= g.x + 1e-9  # siblings side by side, alphabetical
    lone = by_name[("main (a.py:1)", 2)]  # the supervisor's own frame: a different node
    assert lone.width == 100


def test_the_svg_titles_every_frame_with_its_samples_and_share() -> None:
    svg = flame_svg.render(flame_svg.parse(SAMPLE), title="t & <u>", subtitle="s")
    assert svg.startswith("<?xml") and svg.rstrip().endswith("</svg>")
    t = titles(svg)
    assert t["all"] == "all (10 samples, 100.00%)"
    assert t["f (b.py:2)"] == "f (b.py:2) (7 samples, 70.00%)"
    assert t["g (b.py:3)"] == "g (b.py:3) (2 samples, 20.00%)"
    assert "t &amp; &lt;u&gt;" in svg  # escaped
    assert "spawn_main; spawn_main(fd=3)&quot; (9 samples, 90.00%)" in svg  # one frame
    drawn = re.findall(
        r'<title>[^<]*\((\d+) samples, [^<]*</title>\s*<rect x="[\d.]+" y="\d+" width="([\d.]+)"',
        svg,
    )
    assert len(drawn) == svg.count("<title>") == 7
    graph_w = 1200 - 2 * flame_svg.PAD
    for samples, width in drawn:  # each box as wide as its share of the graph
        assert abs(float(width) - graph_w * int(samples) / 10) < 0.01


def test_frames_narrower_than_the_minimum_are_left_out() -> None:
    stacks: dict[tuple[str, ...], int] = {("a (x.py:1)",): 10_000, ("b (x.py:1)",): 1}
    boxes = flame_svg.layout(flame_svg.tree(stacks), 1000)
    assert [b.name for b in boxes] == ["all", "a (x.py:1)"]
