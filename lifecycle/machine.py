"""The one ``transitions`` machine, built from the table in ``states.py``.

It is shared by every subscription (the pattern the transitions FAQ gives for
many models): a machine per object would cost hundreds of microseconds and
tens of kilobytes each. No model is ever added to it; a trigger is fired on a
model by ``fire``, and nothing outside this module touches ``transitions``.
"""

from __future__ import annotations

from typing import Any, Protocol

from transitions import EventData, Machine

from lifecycle.errors import LifecycleError
from lifecycle.rules import Attempt, Rule
from lifecycle.states import EDGES, State, edge, refusing_rule, sources


class Model(Protocol):
    """What the machine moves: anything with a ``state`` holding a state's value."""

    state: str


def _condition(rule: Rule) -> Any:
    def check(event: EventData) -> bool:
        attempt = event.kwargs["attempt"]
        return rule.guard(attempt)

    check.__name__ = f"guard[{rule.code}]"
    return check


MACHINE = Machine(
    model=None,
    states=[state.value for state in State],
    initial=None,
    transitions=[
        {
            "trigger": e.trigger,
            "source": [state.value for state in e.sources],
            "dest": e.dest.value,
            "conditions": [_condition(rule) for rule in e.guards],
        }
        for e in EDGES
    ],
    auto_transitions=False,
    send_event=True,
)


def fire(model: Model, trigger: str, attempt: Attempt) -> None:
    """Take ``model`` along ``trigger``'s edge, or raise the rule that refuses it.

    Guards raise their ``RuleViolation`` before the state is touched, so a
    refused trigger leaves ``model`` as it was.
    """
    state = State(model.state)
    if edge(trigger, state) is None:
        rule = refusing_rule(trigger, state)
        allowed = ", ".join(sources(trigger)) or "nowhere"
        raise rule.refuse(
            state=state,
            operation=trigger,
            allowed=allowed,
            **attempt.facts,
        )
    if not MACHINE.events[trigger].trigger(model, attempt=attempt):
        # NOTE: every guard raises instead of returning False, so a False here
        # means the table and the machine disagree: a bug, never a refusal.
        raise LifecycleError(f"transitions refused {trigger} from {state} silently")
