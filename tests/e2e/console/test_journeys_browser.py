"""Playwright: an operator builds a win-back journey with an A/B split in the console,
dry-runs it for a member, publishes it, and sees its funnel after the clock is moved."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from playwright.sync_api import expect
from tests.e2e.console.conftest import Live, shoot, sign_in

from loyalist import bootstrap
from loyalist.events import consumers
from loyalist.events import service as events
from loyalist.jobs import queue
from loyalist.journey import domain
from loyalist.journey import service as journeys
from loyalist.kit.clock import clock
from loyalist.kit.localtime import local_day
from loyalist.order import service as orders
from loyalist.programme import service as programmes

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _win_back(days: int) -> str:
    return f"""key: win_back_e2e
name: 召回（A/B）
entry: {{inactive_days: {days}}}
reentry: {{mode: after, days: 90}}
exit: [{{event: order.recorded}}]
steps:
  - id: ab
    type: split
    experiment: e2e_offer
    variants:
      - {{name: control, weight: 50, next: end}}
      - {{name: sms, weight: 50}}
  - {{id: wait, type: wait, duration: {{days: 3}}}}
  - id: nudge
    type: action
    action: send_message
    params: {{template: notice, channel: sms, params: {{text: 好久不见}}}}
"""


def test_operator_builds_dry_runs_publishes_and_sees_the_funnel(live: Live, page: Any) -> None:
    alice = live.shop.members["alice"]
    with live.db.transaction() as s:
        tz = programmes.active(s)[1].tz
        _n, last = orders.history(s, alice)
        assert last is not None
        days = (local_day(tz, clock.now()) - local_day(tz, last)).days
    text = _win_back(days)

    sign_in(page, live, "admin", "/admin/journeys")
    expect(page.locator("h1")).to_have_text("自动化旅程")
    page.locator("[data-testid=new-journey]").click()
    page.wait_for_load_state("networkidle")
    page.fill("#document", text)
    page.fill("#member_id", str(alice))
    page.locator("[data-testid=dry-run]").click()
    page.wait_for_load_state("networkidle")
    result = page.locator("[data-testid=dry-result]")
    expect(result).to_contain_text("会进入")
    expect(result.locator("li[data-step=ab]")).to_contain_text("hash(e2e_offer")
    expect(page.locator("ol.flow li[data-step=ab]")).to_contain_text("A/B 分流")
    page.locator("[data-testid=publish]").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/admin/journeys/win_back_e2e?notice=published"), page.url
    expect(page.locator("[data-testid=journey-status]")).to_have_text("运行中")

    # The worker's part, in this process on a moved clock: the daily trigger, then 3 days.
    bootstrap.configure()
    state = clock.snapshot()
    try:
        clock.freeze(clock.now() + timedelta(minutes=1))
        entered = live.db.run(lambda s: journeys.daily(s, clock.now()))
        assert entered >= 1
        clock.advance(timedelta(days=3, minutes=1))
        live.db.run(events.assign_positions)
        consumer = next(c for c in consumers.registered() if c.name == "journeys")
        while live.db.run(lambda s: consumers.run_batch(s, consumer)):
            pass
        queue.run_until_empty(live.db)
    finally:
        clock.restore(state)
    with live.db.transaction() as s:
        runs = journeys.runs(s, journeys.ACTOR, "win_back_e2e", limit=1000)
    split = domain.parse({"journeys": [yaml.safe_load(text)]}).journeys[0].steps[0]
    assert isinstance(split, domain.SplitStep)
    sms = sum(domain.assign(split, r.member_id).name == "sms" for r in runs)

    page.reload()
    page.wait_for_load_state("networkidle")
    assert int(page.get_attribute("[data-testid=funnel-entered]", "data-value") or -1) == entered
    ab = page.locator("[data-testid=step-count][data-step=ab]")
    assert ab.get_attribute("data-value") == str(entered)
    if sms:
        nudge = page.locator("[data-testid=step-count][data-step=nudge]")
        assert nudge.get_attribute("data-value") == str(sms)
    expect(page.locator("[data-testid=readout]")).to_contain_text("e2e_offer")
    shoot(page, "journey")
