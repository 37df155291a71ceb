"""The single list of feature routers."""

from fastapi import APIRouter

from loyalist.events.endpoints import health_router
from loyalist.events.endpoints import router as events_router
from loyalist.member.endpoints import router as member_router
from loyalist.order.endpoints import router as order_router
from loyalist.org.endpoints import router as org_router
from loyalist.programme.endpoints import router as programme_router
from loyalist.reward.endpoints import router as reward_router
from loyalist.webhooks.endpoints import router as webhooks_router

router = APIRouter()
for r in (
    member_router,
    order_router,
    reward_router,
    programme_router,
    events_router,
    org_router,
    health_router,
    webhooks_router,
):
    router.include_router(r)
