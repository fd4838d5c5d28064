"""One customer's journey through the IMS subscription lifecycle.

Trial, trial used up, Enterprise, pay-as-you-go, add-on, unsubscribe: each step
prints the state and what it cost. Run it with ``python examples/journey.py``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import lifecycle as lc

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(day: int, month: int = 3, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=SHANGHAI)


def show(step: str, sub: lc.Subscription, when: datetime, result: object = None) -> None:
    state = sub.state_at(when).value
    credits = sub.remaining_credits(when)
    line = f"{when:%Y-%m-%d %H:%M}  {step:<44} {state:<21} credits {credits:>8}"
    if isinstance(result, lc.Receipt):
        line += f"  charged {result.amount}"
        if result.forfeited:
            line += f", forfeited {result.forfeited}"
    elif isinstance(result, lc.Settlement):
        line += (
            f"  quota {result.quota} addons {result.addons} payg {result.payg}"
            f" denied {result.denied} = CNY {result.amount}"
        )
        if result.rule:
            line += f"  [{result.rule}]"
    print(line)


def main() -> int:
    sub = lc.Subscription.new("cust-42", catalog=lc.default_catalog())
    show("new customer", sub, at(1))

    when = at(1)
    show("buy the monthly feature trial", sub, when, sub.purchase_trial("o-1", at=when))
    when = at(2)
    usage = sub.record_usage("media_processing", Decimal("60"), "u-1", at=when)
    show("transcode 60 units", sub, when, usage)
    when = at(3)
    usage = sub.record_usage("media_processing", Decimal("55"), "u-2", at=when)
    show("transcode 55 more: trial used up (Q5)", sub, when, usage)

    when = at(3, hour=11)
    try:
        sub.purchase_trial("o-2", at=when)
    except lc.RuleViolation as refusal:
        print(f"{'':18}refused: {refusal}")

    when = at(4)
    receipt = sub.subscribe("basic", "o-3", term_months=12, at=when)
    show("subscribe to Basic Edition", sub, when, receipt)
    when = at(20)
    usage = sub.record_usage("media_processing", Decimal("2030"), "u-3", at=when)
    show("transcode 2030 units: beyond quota (Q6)", sub, when, usage)
    when = at(21)
    usage = sub.record_usage("rtc_ai", Decimal("10"), "u-4", at=when)
    show("Real-time Conversational AI on Basic (Q7)", sub, when, usage)

    when = at(22)
    show("buy add-on boost-500 (Q1)", sub, when, sub.buy_addon("boost-500", "o-4", at=when))
    when = at(23)
    usage = sub.record_usage("media_processing", Decimal("120"), "u-5", at=when)
    show("transcode 120 units from the add-on", sub, when, usage)

    when = at(25)
    show("unsubscribe with credits left (Q4)", sub, when, sub.unsubscribe("r-1", at=when))
    when = at(26)
    usage = sub.record_usage("media_processing", Decimal("1"), "u-6", at=when)
    show("transcode after unsubscribing", sub, when, usage)

    print()
    print("history:")
    for entry in sub.history:
        print(
            f"  {entry.seq:>2}. {entry.at.astimezone(SHANGHAI):%Y-%m-%d %H:%M}  "
            f"{entry.trigger:<15} {entry.source.value} -> {entry.dest.value}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
