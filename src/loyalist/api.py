"""The single list of feature routers."""

from fastapi import APIRouter, Depends, FastAPI

from loyalist.approval.endpoints import router as approval_router
from loyalist.coupon.endpoints import router as coupon_router  # coupons (issue 12)
from loyalist.events.endpoints import health_router
from loyalist.events.endpoints import router as events_router
from loyalist.fraud.endpoints import router as fraud_router  # fraud controls (issue 13)
from loyalist.habits.endpoints import router as habits_router  # habits (issue 12 items 4-7)
from loyalist.household.endpoints import router as household_router  # households (issue 13)
from loyalist.http import refuse_unknown_query
from loyalist.journey.endpoints import router as journey_router  # journeys (issue 14)
from loyalist.journey.endpoints import runs_router as journey_runs_router  # journeys (issue 14)
from loyalist.member.endpoints import router as member_router
from loyalist.merge.endpoints import router as merge_router  # trust: identity merge
from loyalist.messaging.endpoints import router as messaging_router  # channels (issue 14)
from loyalist.order.endpoints import router as order_router
from loyalist.org.endpoints import router as org_router
from loyalist.passes.endpoints import router as passes_router  # paid membership (issue 15)
from loyalist.privacy.endpoints import router as privacy_router  # trust: export, erasure
from loyalist.programme.endpoints import router as programme_router
from loyalist.recommend.endpoints import router as recommend_router  # issue 14 item 6
from loyalist.referral.endpoints import router as referral_router  # referrals (issue 12)
from loyalist.reward.endpoints import router as reward_router
from loyalist.viral.endpoints import router as viral_router  # assist and groups (issue 12)
from loyalist.webhooks.endpoints import router as webhooks_router

ROUTERS: tuple[APIRouter, ...] = (
    member_router,
    order_router,
    reward_router,
    programme_router,
    events_router,
    org_router,
    health_router,
    webhooks_router,
    approval_router,
    journey_router,  # journeys (issue 14)
    journey_runs_router,  # journeys (issue 14)
    coupon_router,  # coupons (issue 12)
    messaging_router,  # channels (issue 14)
    referral_router,  # referrals (issue 12)
    viral_router,  # friend-assist and groups (issue 12)
    habits_router,  # habits (issue 12 items 4-7)
    privacy_router,  # trust (issue 13)
    merge_router,  # trust: identity merge (issue 13 item 2)
    recommend_router,  # recommendations (issue 14)
    household_router,  # households (issue 13)
    fraud_router,  # fraud controls (issue 13)
    passes_router,  # paid membership (issue 15 item 7)
)


def include_api(app: FastAPI) -> None:
    """Every feature router into the application, in this order, each directly: every /v1
    operation refuses query parameters it does not declare (422 naming them).

    Not through one router of routers: FastAPI walks the routers an included router
    includes (to see whether any changed) several times per request to match its path,
    and this list is long (speed, issue 11)."""
    unknown_query_refused = [Depends(refuse_unknown_query)]
    for router in ROUTERS:
        app.include_router(router, dependencies=unknown_query_refused)
