"""The single list of feature routers."""

from fastapi import APIRouter, Depends

from loyalist.approval.endpoints import router as approval_router
from loyalist.events.endpoints import health_router
from loyalist.events.endpoints import router as events_router
from loyalist.http import refuse_unknown_query
from loyalist.member.endpoints import router as member_router
from loyalist.order.endpoints import router as order_router
from loyalist.org.endpoints import router as org_router
from loyalist.privacy.endpoints import router as privacy_router  # trust: export, erasure
from loyalist.programme.endpoints import router as programme_router
from loyalist.reward.endpoints import router as reward_router
from loyalist.webhooks.endpoints import router as webhooks_router

# Every /v1 operation refuses query parameters it does not declare (422 naming them).
router = APIRouter(dependencies=[Depends(refuse_unknown_query)])
for r in (
    member_router,
    order_router,
    reward_router,
    programme_router,
    events_router,
    org_router,
    health_router,
    webhooks_router,
    approval_router,
    privacy_router,  # trust (issue 13)
):
    router.include_router(r)
