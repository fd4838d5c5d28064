"""Diagrams and the rules reference, generated from the table the engine runs.

extract -> model -> renderers: ``extract()`` reads the transition table and
the Rule objects into a small graph model; ``mermaid``, ``dot`` and
``reference`` render it. Nothing here reads a live subscription, so no
current state is ever marked, and the output is the same on every run and
every hash seed (everything is emitted in table order).

The SVG is drawn from the DOT by Graphviz's ``dot`` and nothing else (no
fallback between engines). It differs between Graphviz versions, so it is
stamped with the hash of the DOT it was drawn from, and a staleness check
compares stamps, not bytes.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs

from lifecycle import problems
from lifecycle.rules import RULES, Rule
from lifecycle.settlement import DECIDES
from lifecycle.states import EDGES, REFUSALS, State

STATE_MEANINGS: Mapping[State, str] = {
    State.NONE: "never bought anything",
    State.TRIAL: "a monthly feature trial package is running",
    State.TRIAL_EXHAUSTED: "the trial was consumed or expired; service stopped",
    State.ENTERPRISE_ACTIVE: "Enterprise Edition within validity, quota left",
    State.QUOTA_EXHAUSTED_PAYG: (
        "Enterprise within validity, quota used up, usage billed pay-as-you-go"
    ),
    State.UNSUBSCRIBED: "the customer unsubscribed from Enterprise during validity",
    State.EXPIRED: "the Enterprise validity period ran out",
}

FILES = ("lifecycle.mmd", "lifecycle.dot", "lifecycle.svg", "README.md")
STAMP = re.compile(r"<!-- lifecycle: drawn from lifecycle\.dot sha256=([0-9a-f]{64}) -->")


@attrs.frozen
class Arc:
    """One drawn edge: a trigger from one state to another."""

    source: State
    dest: State
    trigger: str
    rules: tuple[str, ...]
    cause: str | None

    @property
    def automatic(self) -> bool:
        return self.cause is not None

    @property
    def label(self) -> str:
        if self.cause is not None:
            return f"(auto) {self.cause}"
        if self.rules:
            return f"{self.trigger} [{', '.join(self.rules)}]"
        return self.trigger


@attrs.frozen
class Graph:
    states: tuple[State, ...]
    arcs: tuple[Arc, ...]
    initial: State = State.NONE


def extract() -> Graph:
    """The graph model of the transition table, in table order."""
    arcs = tuple(
        Arc(source, edge.dest, edge.trigger, tuple(r.code for r in edge.guards), edge.cause)
        for edge in EDGES
        for source in edge.sources
    )
    return Graph(tuple(State), arcs)


def _mermaid_id(state: State) -> str:
    return state.value.replace("-", "_")


def mermaid(graph: Graph) -> str:
    """Mermaid ``stateDiagram-v2``; automatic transitions are labelled ``(auto)``
    (Mermaid state diagrams cannot dash an edge)."""
    lines = ["stateDiagram-v2", "    direction LR"]
    for state in graph.states:
        lines.append(f'    state "{state.value}" as {_mermaid_id(state)}')
    lines.append(f"    [*] --> {_mermaid_id(graph.initial)}")
    for arc in graph.arcs:
        lines.append(f"    {_mermaid_id(arc.source)} --> {_mermaid_id(arc.dest)} : {arc.label}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot(graph: Graph) -> str:
    """Graphviz DOT; automatic transitions are dashed and grey."""
    lines = [
        "digraph lifecycle {",
        "    rankdir=LR;",
        '    graph [fontname="Helvetica", fontsize=11, nodesep=0.5, ranksep=0.9];',
        '    node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=9];',
        '    start [shape=point, width=0.15, label=""];',
    ]
    for state in graph.states:
        lines.append(f"    {_quote(state.value)};")
    lines.append(f"    start -> {_quote(graph.initial.value)};")
    for arc in graph.arcs:
        style = ', style=dashed, color="gray40", fontcolor="gray30"' if arc.automatic else ""
        lines.append(
            f"    {_quote(arc.source.value)} -> {_quote(arc.dest.value)} "
            f"[label={_quote(arc.label)}{style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_hash(dot_source: str) -> str:
    return hashlib.sha256(dot_source.encode("utf-8")).hexdigest()


def svg(dot_source: str) -> str:
    """Render ``dot_source`` with Graphviz's ``dot`` and stamp it with the DOT's hash."""
    program = shutil.which("dot")
    if program is None:
        raise RuntimeError(
            "Graphviz's `dot` is not installed (Debian: apt-get install graphviz); "
            "it draws lifecycle.svg"
        )
    drawn = subprocess.run(
        [program, "-Tsvg"], input=dot_source, capture_output=True, text=True, check=True
    ).stdout
    stamp = f"<!-- lifecycle: drawn from lifecycle.dot sha256={dot_hash(dot_source)} -->"
    head, sep, rest = drawn.partition("?>\n")
    return f"{head}{sep}{stamp}\n{rest}" if sep else f"{stamp}\n{drawn}"


def svg_stamp(svg_source: str) -> str | None:
    """The DOT hash an SVG was stamped with, or None."""
    found = STAMP.search(svg_source)
    return found.group(1) if found else None


def rule_acts(rule: Rule) -> list[str]:
    """Where ``rule`` acts: the edges it guards, the refusals it makes, the usage it settles."""
    where = []
    for edge in EDGES:
        if rule in edge.guards:
            sources = ", ".join(s.value for s in edge.sources)
            where.append(f"guards `{edge.trigger}` ({sources} → {edge.dest.value})")
    for refusal in REFUSALS:
        if refusal.rule is rule:
            sources = ", ".join(s.value for s in refusal.sources)
            where.append(f"refuses `{refusal.trigger}` in {sources}")
    if rule.code == "transition.not_allowed":
        where.append("refuses any operation with no edge from the current state")
    if rule in DECIDES:
        states = ", ".join(s.value for s in DECIDES[rule])
        where.append(f"settles usage and `authorize` in {states}")
    return where


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def states_table() -> str:
    rows = ["| state | value | meaning |", "|---|---|---|"]
    for state in State:
        rows.append(f"| `State.{state.name}` | `{state.value}` | {STATE_MEANINGS[state]} |")
    return "\n".join(rows) + "\n"


def rules_table() -> str:
    """The short rules table: code, FAQ question number, summary."""
    rows = ["| code | FAQ | rule |", "|---|---|---|"]
    for rule in RULES:
        rows.append(f"| `{rule.code}` | {rule.faq or '—'} | {_cell(rule.summary)} |")
    return "\n".join(rows) + "\n"


def reference(graph: Graph) -> str:
    """``diagrams/README.md``: the diagram, the states, and the rules reference."""
    parts = [
        "# The lifecycle, as the engine runs it",
        "",
        "Generated by `lifecycle diagrams` from the transition table and the `Rule`",
        "objects in `lifecycle/`; do not edit by hand (`lifecycle diagrams --check`",
        "fails when this file is stale). Solid edges are caller operations, labelled",
        "with the codes of the rules guarding them; edges labelled `(auto)` (dashed",
        "in [lifecycle.svg](lifecycle.svg)) are transitions the library makes by",
        "itself, labelled with their cause.",
        "",
        "```mermaid",
        mermaid(graph).rstrip("\n"),
        "```",
        "",
        "![The lifecycle state diagram](lifecycle.svg)",
        "",
        "## States",
        "",
        states_table().rstrip("\n"),
        "",
        "## Rules",
        "",
        "Each rule is one `Rule` object: its code is stable and names it in every",
        "refusal (`RuleViolation.code`), settlement (`Settlement.rule`) and",
        "decision (`Decision.rule`).",
        "",
    ]
    for rule in RULES:
        parts.append(f"### `{rule.code}`")
        parts.append("")
        parts.append(f"{rule.summary[0].upper()}{rule.summary[1:]}.")
        parts.append("")
        if rule.faqs:
            for faq, question in zip(rule.faqs, rule.questions, strict=True):
                parts.append(f"> **{faq}.** {question}")
                parts.append(">")
            parts.pop()
        else:
            parts.append("The library's own rule: the FAQ does not speak to it.")
        parts.append("")
        for where in rule_acts(rule):
            parts.append(f"- {where}")
        parts.append("")
    return "\n".join(parts)


def render(graph: Graph | None = None) -> dict[str, str]:
    """Every generated file but the SVG, by name."""
    graph = extract() if graph is None else graph
    return {
        "lifecycle.mmd": mermaid(graph),
        "lifecycle.dot": dot(graph),
        "README.md": reference(graph),
    }


def write(out: Path) -> list[Path]:
    """Write every file into ``out``, the SVG drawn by ``dot``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = render()
    files["lifecycle.svg"] = svg(files["lifecycle.dot"])
    written = []
    for name in FILES:
        path = out / name
        path.write_text(files[name], encoding="utf-8")
        written.append(path)
    return written


def stale(out: Path) -> list[tuple[Path, str]]:
    """The files in ``out`` that differ from what would be generated, and why."""
    files = render()
    found = []
    for name in FILES:
        path = out / name
        if not path.exists():
            found.append((path, "missing"))
            continue
        text = path.read_text(encoding="utf-8")
        if name == "lifecycle.svg":
            if svg_stamp(text) != dot_hash(files["lifecycle.dot"]):
                found.append((path, "drawn from another lifecycle.dot"))
        elif text != files[name]:
            found.append((path, "differs from the table"))
    return found


# --- blocks generated inside a hand-written Markdown file ---------------------


def mermaid_block() -> str:
    return "```mermaid\n" + mermaid(extract()) + "```\n"


BLOCKS: Mapping[str, Callable[[], str]] = {
    "diagram": mermaid_block,
    "states": states_table,
    "rules": rules_table,
    "problems": lambda: problems.table() + "\n",
}


def fill_blocks(text: str) -> str:
    """``text`` with each ``<!-- generated:NAME -->`` ... ``<!-- /generated:NAME -->``
    block replaced by its current content."""
    for name, make in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.DOTALL
        )
        text = pattern.sub(functools.partial(_splice, make()), text)
    return text


def _splice(content: str, found: re.Match[str]) -> str:
    return found.group(1) + content + found.group(2)
