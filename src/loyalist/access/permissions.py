"""Console roles and the actions each may take; the one check the services call.

An :class:`~loyalist.kit.actor.Actor` with ``permissions=None`` (API keys, system) may take
every action its ``can_write`` flag allows; a console user's actor carries its role's set.
"""

from __future__ import annotations

from loyalist.errors import Forbidden
from loyalist.kit.actor import Actor

MEMBER_READ = "member.read"
MEMBER_PHONE = "member.phone"  # see phone numbers unmasked
MEMBER_WRITE = "member.write"  # profile, tags, consent, identities
POINTS_ADJUST = "points.adjust"
POINTS_APPROVE = "points.approve"
ORDER_READ = "order.read"
ORDER_WRITE = "order.write"
REDEMPTION_READ = "redemption.read"
REDEMPTION_CREATE = "redemption.create"
REDEMPTION_CANCEL = "redemption.cancel"
PROGRAMME_READ = "programme.read"
PROGRAMME_PUBLISH = "programme.publish"
DASHBOARD_READ = "dashboard.read"
AUDIT_READ = "audit.read"
STAFF_MANAGE = "staff.manage"
JOBS_MANAGE = "jobs.manage"  # see the job queue, retry and cancel jobs
WEBHOOK_READ = "webhook.read"  # endpoints, deliveries and attempts
WEBHOOK_MANAGE = "webhook.manage"  # register, change, rotate secrets, replay
REDEMPTION_COLLECT = "redemption.collect"  # hand a redeemed reward over at the counter
REWARD_STOCK = "reward.stock"  # top up a reward's stock
ORG_MANAGE = "org.manage"  # create, rename, move and close organisation units
KEY_MANAGE = "apikey.manage"  # create and revoke API keys
ANALYTICS_READ = "analytics.read"  # the console's analytics section (issue 10, item 9)
# Personal data unmasked: phone, e-mail, birthday, openid and POS card number. (The
# permission kept its first name, from when only phones were masked.)
PERSONAL_DATA = MEMBER_PHONE
# trust (issue 13): export a member's data, erase it (right to be forgotten)
PRIVACY_MANAGE = "privacy.manage"
# identity merge (issue 13 item 2): merge two members, undo it, dismiss a duplicate pair
MEMBER_MERGE = "member.merge"

_READS = frozenset({MEMBER_READ, ORDER_READ, REDEMPTION_READ, PROGRAMME_READ})

ROLES: dict[str, frozenset[str]] = {
    "hq_admin": _READS
    | {
        MEMBER_PHONE,
        MEMBER_WRITE,
        POINTS_ADJUST,
        POINTS_APPROVE,
        ORDER_WRITE,
        REDEMPTION_CREATE,
        REDEMPTION_CANCEL,
        PROGRAMME_PUBLISH,
        DASHBOARD_READ,
        AUDIT_READ,
        STAFF_MANAGE,
        JOBS_MANAGE,
        WEBHOOK_READ,
        WEBHOOK_MANAGE,
        REDEMPTION_COLLECT,
        REWARD_STOCK,
        ORG_MANAGE,
        KEY_MANAGE,
        PRIVACY_MANAGE,
        ANALYTICS_READ,
        MEMBER_MERGE,
    },
    "regional_manager": _READS
    | {
        MEMBER_PHONE,
        MEMBER_WRITE,
        POINTS_ADJUST,
        POINTS_APPROVE,
        ORDER_WRITE,
        REDEMPTION_CREATE,
        REDEMPTION_CANCEL,
        DASHBOARD_READ,
        REDEMPTION_COLLECT,
        ANALYTICS_READ,
        MEMBER_MERGE,
    },
    "store_staff": _READS
    | {
        MEMBER_PHONE,
        MEMBER_WRITE,
        ORDER_WRITE,
        REDEMPTION_CREATE,
        DASHBOARD_READ,
        REDEMPTION_COLLECT,
    },
    "service_agent": _READS | {MEMBER_WRITE, POINTS_ADJUST, REDEMPTION_CREATE, REDEMPTION_CANCEL},
    "analyst": _READS | {DASHBOARD_READ, ANALYTICS_READ},
}
WRITE_ACTIONS = frozenset(
    {
        MEMBER_WRITE,
        POINTS_ADJUST,
        POINTS_APPROVE,
        ORDER_WRITE,
        REDEMPTION_CREATE,
        REDEMPTION_CANCEL,
        PROGRAMME_PUBLISH,
        STAFF_MANAGE,
        JOBS_MANAGE,
        WEBHOOK_MANAGE,
        REDEMPTION_COLLECT,
        REWARD_STOCK,
        ORG_MANAGE,
        KEY_MANAGE,
        MEMBER_MERGE,
    }
)
# Every action any role may take (an API key without personal data gets all but that).
ALL_ACTIONS = frozenset().union(*ROLES.values())


def role_can_write(role: str) -> bool:
    return bool(ROLES[role] & WRITE_ACTIONS)


def require(actor: Actor, action: str) -> None:
    """Raise 403 unless ``actor`` may take ``action``: its role must grant it, and a write
    needs an actor that may write (a read-only API key is refused here too, not only at
    the HTTP layer, so every caller of a service meets the same rule)."""
    if not actor.can(action):
        raise Forbidden(f"Your role may not do this ({action}).")
    if action in WRITE_ACTIONS and not actor.can_write:
        raise Forbidden(f"This actor is read-only ({action}).")


def may_see_phone(actor: Actor) -> bool:
    """Whether phone numbers are shown unmasked to ``actor`` (API keys: yes)."""
    return actor.can(MEMBER_PHONE)
