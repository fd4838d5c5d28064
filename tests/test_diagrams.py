"""Diagrams and the rules reference: generated from the table, deterministic, checked."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle import diagrams
from lifecycle.cli import main
from lifecycle.rules import RULES
from lifecycle.states import EDGES

ROOT = Path(__file__).parent.parent


def test_committed_diagrams_are_current() -> None:
    """`lifecycle diagrams --check` passes on the repository: nothing is stale."""
    os.chdir(ROOT)
    assert 0 == main(["diagrams", "--check"])


def test_every_edge_is_drawn_with_its_rules() -> None:
    """Each edge of the table appears in Mermaid and DOT, labelled with its guards."""
    graph = diagrams.extract()
    mermaid, dot = diagrams.mermaid(graph), diagrams.dot(graph)
    for edge in EDGES:
        for source in edge.sources:
            arc = next(a for a in graph.arcs if (a.trigger, a.source) == (edge.trigger, source))
            assert arc.label in mermaid
            assert f'"{source.value}" -> "{edge.dest.value}" [label="{arc.label}"' in dot
            for rule in edge.guards:
                assert rule.code in arc.label
    assert len(graph.arcs) == sum(len(e.sources) for e in EDGES)


def test_automatic_transitions_are_dashed_and_labelled_by_cause() -> None:
    """Automatic edges are dashed in DOT and labelled `(auto) cause`; operations are solid."""
    dot = diagrams.dot(diagrams.extract())
    for line in dot.splitlines():
        if "->" in line and "start" not in line:
            assert ("(auto)" in line) == ("style=dashed" in line)
    assert "(auto) trial validity ends" in dot


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
