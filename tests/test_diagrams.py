"""Diagrams and the rules reference: generated from the table, deterministic, checked."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle import diagrams
from lifecycle.cli import main
from lifecycle.rules import RULES
from lifecycle.states import EDGES, State

ROOT = Path(__file__).parent.parent


def test_committed_diagrams_are_current() -> None:
    """`lifecycle diagrams --check` passes on the repository: nothing is stale."""
    os.chdir(ROOT)
    assert 0 == main(["diagrams", "--check"])


def test_every_edge_is_drawn_with_its_rules() -> None:
    """Each arc of the table is in exactly one drawn edge, from its source (or
    from the group of its source) to its destination, labelled with its guards,
    in Mermaid and in DOT."""
    graph = diagrams.extract()
    lines = diagrams.lines(graph)
    mermaid, dot = diagrams.mermaid(graph), diagrams.dot(graph)
    drawn = [arc for line in lines for arc in line.arcs]
    assert sorted(map(repr, drawn)) == sorted(map(repr, graph.arcs))
    assert len(graph.arcs) == sum(len(e.sources) for e in EDGES)
    for line in lines:
        for arc in line.arcs:
            assert arc.dest is line.dest
            if line.group is None:
                assert arc.source is line.source
            else:
                assert arc.source in {g: m for g, _, m in diagrams.GROUPS}[line.group]
            for rule in arc.rules:
                assert rule in arc.label
        tail = line.source.value.replace("-", "_") if line.group is None else f"group_{line.group}"
        assert f"{tail} {'-.->' if line.automatic else '-->'}|" in mermaid
        label = "\\n".join(t.replace(" [", "\\n[", 1) for t in line.texts(None))
        assert f'"{line.source.value}" -> "{line.dest.value}" [label="{label}"' in dot


def test_parallel_edges_are_merged_and_groups_drawn() -> None:
    """No two drawn edges share an end, a start and a kind; a trigger that
    leaves every state of a group is one edge from the group; each group is a
    Mermaid subgraph and a DOT cluster holding its states."""
    lines = diagrams.lines(diagrams.extract())
    ends = [(line.group or line.source, line.dest, line.automatic) for line in lines]
    assert len(ends) == len(set(ends))
    merged = next(line for line in lines if line.source is State.QUOTA_EXHAUSTED_PAYG
                  and line.dest is State.ENTERPRISE_ACTIVE)  # fmt: skip
    assert ["subscribe", "buy_addon"] == merged.texts(None)
    ended = [line for line in lines if line.group == "ended"]
    assert {"purchase_trial", "subscribe"} == {line.arcs[0].trigger for line in ended}
    assert all(len(line.arcs) == 2 for line in ended)
    mermaid, dot = diagrams.mermaid(diagrams.extract()), diagrams.dot(diagrams.extract())
    for group, title, members in diagrams.GROUPS:
        block = mermaid.split(f'subgraph group_{group} ["{title}"]')[1].split("end")[0]
        cluster = dot.split(f"subgraph cluster_{group} {{")[1].split("}")[0]
        for state in members:
            assert f'{state.value.replace("-", "_")}(["{state.value}"])' in block
            assert f'"{state.value}";' in cluster


def test_the_drawing_is_no_wider_than_twice_its_height() -> None:
    """Graphviz's drawing of the lifecycle, at its natural size."""
    svg = diagrams.svg(diagrams.dot(diagrams.extract()))
    found = re.search(r'<svg width="(\d+)pt" height="(\d+)pt"', svg)
    assert found is not None
    width, height = int(found.group(1)), int(found.group(2))
    assert width <= 2 * height, (width, height)


def test_automatic_transitions_are_dashed_and_labelled_by_cause() -> None:
    """Automatic edges are dashed in DOT and Mermaid and labelled `(auto) cause`;
    operations are solid."""
    graph = diagrams.extract()
    dot, mermaid = diagrams.dot(graph), diagrams.mermaid(graph)
    for line in dot.splitlines():
        if "->" in line and "start" not in line:
            assert ("(auto)" in line) == ("style=dashed" in line)
    for line in mermaid.splitlines():
        if "-->" in line or "-.->" in line:
            assert ("(auto)" in line) == ("-.->" in line)
    assert "(auto) trial validity ends" in dot
    assert "(auto) trial validity ends" in mermaid


def test_refusal_rules_are_in_the_reference_not_edges() -> None:
    """Refusal-only rules appear in the reference, never as edge labels."""
    graph = diagrams.extract()
    labels = " ".join(arc.label for arc in graph.arcs)
    reference = diagrams.reference(graph)
    for code in ("subscribe.already_active", "addon.enterprise_only", "transition.not_allowed"):
        assert code not in labels
        assert f"### `{code}`" in reference
    for rule in RULES:
        for question in rule.questions:
            assert question in reference


def test_output_is_the_same_under_any_hash_seed() -> None:
    """Two runs under different hash seeds write byte-identical text files."""
    outputs = []
    for seed in ("1", "12345"):
        code = (
            "from lifecycle import diagrams; "
            "files = diagrams.render(); "
            "[print(name, files[name], sep='\\n') for name in sorted(files)]"
        )
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]


def test_write_then_check_and_staleness(tmp_path: Path) -> None:
    """Written files check clean; an edited file or an SVG from another DOT is named stale."""
    out, readme = tmp_path / "diagrams", tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- generated:rules -->\n<!-- /generated:rules -->\n")
    assert 0 == main(["diagrams", "--out", str(out), "--readme", str(readme)])
    assert "`trial.no_payg`" in readme.read_text()
    assert 0 == main(["diagrams", "--out", str(out), "--readme", str(readme), "--check"])
    (out / "lifecycle.mmd").write_text("stateDiagram-v2\n")
    svg = (out / "lifecycle.svg").read_text()
    stamp = diagrams.svg_stamp(svg)
    assert stamp is not None
    (out / "lifecycle.svg").write_text(svg.replace(stamp, "0" * 64))
    stale = {path.name for path, _ in diagrams.stale(out)}
    assert {"lifecycle.mmd", "lifecycle.svg"} == stale
    assert 1 == main(["diagrams", "--out", str(out), "--readme", str(readme), "--check"])


def test_check_names_each_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check on an empty directory exits 1 and names every missing file."""
    assert 1 == main(["diagrams", "--out", str(tmp_path), "--readme", "absent.md", "--check"])
    out = capsys.readouterr().out
    for name in diagrams.FILES:
        assert name in out


def test_svg_is_drawn_by_dot_and_stamped() -> None:
    """The SVG comes from Graphviz's dot and carries the hash of the DOT it was drawn from."""
    assert shutil.which("dot"), "Graphviz's dot is needed (apt-get install graphviz)"
    dot = diagrams.dot(diagrams.extract())
    svg = diagrams.svg(dot)
    assert "<svg" in svg
    assert diagrams.dot_hash(dot) == diagrams.svg_stamp(svg)
    assert ">trial&#45;exhausted<" in svg or ">trial-exhausted<" in svg
