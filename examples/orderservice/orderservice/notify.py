"""Notifications: what ``lifecycle worker --handler orderservice.notify:send`` calls
with each transition (at least once: a repeat has the same customer and seq)."""

from __future__ import annotations

import json
import logging

from lifecycle.store import OutboxMessage

log = logging.getLogger("orderservice.notify")

SUBJECTS = {
    "trial_ended": "Your trial has ended",
    "trial_used_up": "Your trial's credits are used up",
    "quota_used_up": "Your quota is used up: usage is now billed pay-as-you-go",
    "period_ended": "Your subscription has expired",
}


async def send(message: OutboxMessage) -> None:
    """Send (here: log) the e-mail a transition calls for; others need none."""
    subject = SUBJECTS.get(message.trigger)
    if subject is not None:
        log.info("mail %s: %s %s", message.customer_id, subject, json.dumps(message.to_dict()))
