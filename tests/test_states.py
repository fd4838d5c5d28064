"""The transition table: complete, consistent, and the only source of the machine."""

import lifecycle as lc
from lifecycle.machine import MACHINE
from lifecycle.rules import BY_CODE, RULES, faq_questions
from lifecycle.states import EDGES, OPERATIONS, REFUSALS, edge, refusing_rule


def test_every_state_is_reachable_from_none() -> None:
    """Following the edges from none reaches all seven states."""
    reached, frontier = {lc.State.NONE}, [lc.State.NONE]
    while frontier:
        state = frontier.pop()
        for e in EDGES:
            if state in e.sources and e.dest not in reached:
                reached.add(e.dest)
                frontier.append(e.dest)
    assert set(lc.State) == reached


def test_refusals_never_shadow_an_edge() -> None:
    """No state has both an edge and a refusal for the same operation."""
    for refusal in REFUSALS:
        for state in refusal.sources:
            assert edge(refusal.trigger, state) is None


def test_every_operation_state_pair_is_decided() -> None:
    """Each operation in each state has an edge, a named refusal or transition.not_allowed."""
    not_allowed = {
        (op, state.value)
        for op in OPERATIONS
        for state in lc.State
        if edge(op, state) is None and refusing_rule(op, state).code == "transition.not_allowed"
    }
    assert {
        ("purchase_trial", "trial"),
        ("purchase_trial", "enterprise-active"),
        ("purchase_trial", "quota-exhausted-payg"),
    } == not_allowed


def test_machine_is_built_from_the_table() -> None:
    """The shared machine has the table's edges exactly, no models and no auto transitions."""
    assert [] == MACHINE.models
    assert not MACHINE.auto_transitions
    built = {
        (trigger, source, t.dest)
        for trigger, event in MACHINE.events.items()
        for source, transitions in event.transitions.items()
        for t in transitions
    }
    table = {(e.trigger, s.value, e.dest.value) for e in EDGES for s in e.sources}
    assert table == built


def test_rules_codes_unique_and_faq_quoted_from_the_seed() -> None:
    """Rule codes are unique; each FAQ reference resolves to the seed's question text."""
    assert len(RULES) == len(BY_CODE)
    questions = faq_questions()
    assert 7 == len(questions)
    assert questions["Q7"] == "Can I use my subscription to pay for Real-time Conversational AI?"
    for rule in RULES:
        assert all(question.endswith("?") for question in rule.questions)
