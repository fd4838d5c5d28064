"""One customer's journey: the path through the lifecycle its history took.

``journey(sub, at)`` reads a subscription (from a record or a store) as of
``at``: the transitions taken by then (the timed ones due by ``at`` included,
as a read shows them), and the state it is in. ``overlay`` turns that into
what ``diagrams.mermaid`` and ``diagrams.dot`` draw over the lifecycle: each
taken arc noted with its count and dates, the current state marked. The
drawing is the same table's as ``lifecycle diagrams``; nothing here decides
a transition.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from lifecycle.clock import aware
from lifecycle.diagrams import Overlay
from lifecycle.states import State
from lifecycle.subscription import Subscription
from lifecycle.values import Transition

SHOWN_DATES = 3
"""Dates written on a taken edge; more are written as first … last."""


@attrs.frozen
class Journey:
    """A customer's transitions up to ``at``, and the state it is in then."""

    customer_id: str
    at: datetime
    steps: tuple[Transition, ...]
    current: State


def journey(sub: Subscription, at: datetime) -> Journey:
    """``sub``'s path as of ``at``. At or after the mark, the timed transitions
    due by ``at`` are taken on a copy (``sub`` is not changed); before it, the
    history is cut at ``at``."""
    at = aware(at, "at")
    steps = [step for step in sub.history if step.at <= at]
    mark = sub.mark
    if mark is not None and at > mark:
        copy = Subscription.from_record(sub.to_record(), catalog=sub.catalog, clock=lambda: at)
        steps += copy.advance(at)
    return Journey(sub.customer_id, at, tuple(steps), sub.state_at(at))


def overlay(path: Journey, zone: object) -> Overlay:
    """What the diagram draws for ``path``: per taken arc its count and local
    dates (in ``zone``), and the current state."""
    dates: dict[tuple[State, State, str], list[str]] = {}
    for step in path.steps:
        local = step.at.astimezone(zone)  # type: ignore[arg-type]
        dates.setdefault((step.source, step.dest, step.trigger), []).append(f"{local:%Y-%m-%d}")
    taken = {key: _note(found) for key, found in dates.items()}
    local_at = path.at.astimezone(zone)  # type: ignore[arg-type]
    title = f"{path.customer_id}: {path.current.value} at {local_at:%Y-%m-%d %H:%M %Z}"
    return Overlay(taken=taken, current=path.current, title=title)


def _note(dates: Sequence[str]) -> str:
    shown = dates if len(dates) <= SHOWN_DATES else [dates[0], "…", dates[-1]]
    times = "" if len(dates) == 1 else f"{len(dates)} times: "
    return times + ", ".join(shown)
