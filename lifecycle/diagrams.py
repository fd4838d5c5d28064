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
from importlib import resources
from pathlib import Path

import attrs

from lifecycle import problems
from lifecycle.rules import FAQ_FILE, RULES, Rule, faq_questions
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

FAQ_TEXT = resources.files("lifecycle").joinpath(FAQ_FILE).read_text("utf-8")
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


GROUPS: tuple[tuple[str, str, tuple[State, ...]], ...] = (
    ("trial", "Trial", (State.TRIAL, State.TRIAL_EXHAUSTED)),
    ("enterprise", "Enterprise", (State.ENTERPRISE_ACTIVE, State.QUOTA_EXHAUSTED_PAYG)),
    ("ended", "Ended", (State.UNSUBSCRIBED, State.EXPIRED)),
)
"""The states drawn together, by id and title; a state in none stands alone."""


@attrs.frozen
class Overlay:
    """One customer's path drawn over the lifecycle (``lifecycle journey``):
    a note per taken arc, keyed ``(source, dest, trigger)``, and the state
    the customer is in."""

    taken: Mapping[tuple[State, State, str], str]
    current: State
    title: str


@attrs.frozen
class Line:
    """One drawn edge: parallel arcs (one source, one destination, all
    automatic or none) merged, one label line per trigger. When a trigger
    leaves every state of a group for the same destination, its arcs are one
    edge from the group (``group``; ``source`` is then the group's last state)."""

    source: State
    dest: State
    arcs: tuple[Arc, ...]
    group: str | None = None

    @property
    def automatic(self) -> bool:
        return self.arcs[0].automatic

    def texts(self, overlay: Overlay | None) -> list[str]:
        notes: dict[str, list[str]] = {}
        for arc in self.arcs:
            note = None if overlay is None else overlay.taken.get(_key(arc))
            notes.setdefault(arc.label, []).extend([] if note is None else [note])
        return [f"{label}: {'; '.join(seen)}" if seen else label for label, seen in notes.items()]

    def taken(self, overlay: Overlay | None) -> bool:
        return overlay is not None and any(_key(arc) in overlay.taken for arc in self.arcs)


def _key(arc: Arc) -> tuple[State, State, str]:
    return (arc.source, arc.dest, arc.trigger)


def _groups_left(arcs: list[Arc]) -> dict[State, str]:
    """For arcs of one trigger to one destination: each source whose whole
    group they leave (the destination outside it), with that group."""
    sources = {arc.source for arc in arcs}
    found = {}
    for group, _, members in GROUPS:
        if set(members) <= sources and arcs[0].dest not in members:
            found.update(dict.fromkeys(members, group))
    return found


def lines(graph: Graph) -> tuple[Line, ...]:
    """The arcs merged into drawn edges, in table order."""
    by_trigger: dict[tuple[str, State], list[Arc]] = {}
    for arc in graph.arcs:
        by_trigger.setdefault((arc.trigger, arc.dest), []).append(arc)
    merged: dict[tuple[State | str, State, bool], list[Arc]] = {}
    for arcs in by_trigger.values():
        groups = _groups_left(arcs)
        for arc in arcs:
            tail: State | str = groups.get(arc.source, arc.source)
            merged.setdefault((tail, arc.dest, arc.automatic), []).append(arc)
    drawn = []
    for (tail, dest, _), arcs in merged.items():
        if isinstance(tail, State):
            drawn.append(Line(tail, dest, tuple(arcs)))
        else:
            drawn.append(Line(_members(tail)[-1], dest, tuple(arcs), tail))
    return tuple(drawn)


def _members(group: str) -> tuple[State, ...]:
    return next(members for name, _, members in GROUPS if name == group)


def _mermaid_id(state: State) -> str:
    return state.value.replace("-", "_")


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid(graph: Graph, overlay: Overlay | None = None) -> str:
    """A Mermaid flowchart: states grouped, automatic transitions dashed,
    parallel arcs merged into one edge; with ``overlay``, the customer's path
    thick and red and the current state filled.

    NOTE: the diagram asks for the ELK layout: Mermaid's default (dagre)
    draws edges that leave a group over each other's labels. Where ELK is not
    loaded (a viewer without it), Mermaid falls back to dagre. It asks in an
    init directive, not front matter, which MyST would read as the options of
    the docs' ``mermaid`` directive.
    """
    lines_out = ['%%{init: {"layout": "elk"}}%%', "flowchart TB"]
    if overlay is not None:
        lines_out.append(f"    %% {overlay.title}")
    lines_out.append('    start(("start"))')
    grouped = {state for _, _, members in GROUPS for state in members}
    for state in graph.states:
        if state not in grouped:
            lines_out.append(f'    {_mermaid_id(state)}(["{state.value}"])')
    for group, title, members in GROUPS:
        lines_out.append(f'    subgraph group_{group} ["{title}"]')
        for state in members:
            lines_out.append(f'        {_mermaid_id(state)}(["{state.value}"])')
        lines_out.append("    end")
    lines_out.append(f"    start --> {_mermaid_id(graph.initial)}")
    taken = []
    for number, line in enumerate(lines(graph), start=1):
        arrow = "-.->" if line.automatic else "-->"
        label = _mermaid_text("<br/>".join(line.texts(overlay)))
        tail = _mermaid_id(line.source) if line.group is None else f"group_{line.group}"
        lines_out.append(f'    {tail} {arrow}|"{label}"| {_mermaid_id(line.dest)}')
        if line.taken(overlay):
            taken.append(str(number))
    lines_out.append("    classDef start fill:#333,stroke:#333,color:#fff")
    lines_out.append("    class start start")
    if overlay is not None:
        lines_out.append("    classDef current fill:#fde2e2,stroke:#c62828,stroke-width:3px")
        lines_out.append(f"    class {_mermaid_id(overlay.current)} current")
        if taken:
            lines_out.append(f"    linkStyle {','.join(taken)} stroke:#c62828,stroke-width:3px")
    return "\n".join(lines_out) + "\n"


CURRENT = 'style="rounded,filled,bold", fillcolor="#fde2e2", color="#c62828", penwidth=2.5'


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(graph: Graph, overlay: Overlay | None = None) -> str:
    """Graphviz DOT, top to bottom: states grouped in clusters, automatic
    transitions dashed and grey, parallel arcs merged into one edge; with
    ``overlay``, the customer's path thick and red and the current state filled."""
    title = "" if overlay is None else f", label={_quote(overlay.title)}, labelloc=t"
    out = [
        "digraph lifecycle {",
        "    rankdir=TB;",
        "    compound=true;",
        f'    graph [fontname="Helvetica", fontsize=11, nodesep=0.4, ranksep=0.55{title}];',
        '    node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=9];',
        '    start [shape=point, width=0.15, label=""];',
    ]
    grouped = {state for _, _, members in GROUPS for state in members}

    def node(state: State) -> str:
        if overlay is not None and state is overlay.current:
            return f"{_quote(state.value)} [{CURRENT}]"
        return _quote(state.value)

    for state in graph.states:
        if state not in grouped:
            out.append(f"    {node(state)};")
    for group, title_text, members in GROUPS:
        out.append(f"    subgraph cluster_{group} {{")
        out.append(f'        label={_quote(title_text)}; style="rounded,dashed"; color="gray60";')
        for state in members:
            out.append(f"        {node(state)};")
        out.append("    }")
    out.append(f"    start -> {_quote(graph.initial.value)};")
    order = list(graph.states)
    for line in lines(graph):
        style = ', style=dashed, color="gray40", fontcolor="gray30"' if line.automatic else ""
        if line.taken(overlay):
            style += ', color="#c62828", fontcolor="#c62828", penwidth=2.5'
        if order.index(line.dest) < order.index(line.source):
            style += ", constraint=false"  # a way back: it does not set the ranks
        if line.group is not None:
            style += f", ltail=cluster_{line.group}"
        label = "\n".join(text.replace(" [", "\n[", 1) for text in line.texts(overlay))
        out.append(
            f"    {_quote(line.source.value)} -> {_quote(line.dest.value)} "
            f"[label={_quote(label)}{style}];"
        )
    out.append("}")
    return "\n".join(out) + "\n"


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


def transitions_table() -> str:
    """Every arc of the table: from, operation or cause, to, guarding rules."""
    rows = ["| from | operation or cause | to | guarded by |", "|---|---|---|---|"]
    for arc in extract().arcs:
        what = f"`{arc.trigger}`" if arc.cause is None else f"(auto) {arc.cause}"
        rules = ", ".join(f"`{code}`" for code in arc.rules) or "—"
        rows.append(f"| `{arc.source.value}` | {what} | `{arc.dest.value}` | {rules} |")
    return "\n".join(rows) + "\n"


def faq_reference() -> str:
    """Each FAQ question with its answer, verbatim, and the rules that enforce it,
    with where each acts in the engine's table."""
    lines = FAQ_TEXT.splitlines()
    parts = []
    for faq, question in faq_questions().items():
        answer = lines[lines.index(question) + 1] if question in lines else ""
        parts += [f"## {faq}. {question}", "", f"> {answer}", ""]
        enforcing = [rule for rule in RULES if faq in rule.faqs]
        for rule in enforcing:
            parts.append(f"- `{rule.code}`: {_cell(rule.summary)}.")
            parts += [f"  - {where}" for where in rule_acts(rule)]
        if not enforcing:
            parts.append("- No rule: the answer points elsewhere.")
        parts.append("")
    return "\n".join(parts)


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
        "with the codes of the rules guarding them; dashed edges, labelled `(auto)`,",
        "are transitions the library makes by itself, labelled with their cause. An",
        "edge from a group (Trial, Enterprise, Ended) leaves each of its states.",
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
        "## Transitions",
        "",
        transitions_table().rstrip("\n"),
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
    "transitions": transitions_table,
    "rules": rules_table,
    "faq": faq_reference,
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
