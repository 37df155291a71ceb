"""Words for the raw keys and values the console would otherwise show: the fields of audit
rows and profile changes by their labels, money as money, phones as people write them.

The English labels are msgids of the console catalogue (``locale/*/messages.po``); a key
not listed here is shown as written (a code, in a ``translate="no"`` element).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# Field key → label (msgid). Keys are those the services write to audit rows and events.
FIELDS: dict[str, str] = {
    # habits, referrals, assists and groups (audit rows, issue 12)
    "local_day": "Day",
    "streak": "Streak (days)",
    "bonuses": "Streak bonuses",
    "activity": "Activity",
    "ref": "Reference",
    "capped": "Capped",
    "held": "Held for review",
    "campaign": "Campaign",
    "starter_id": "Started by",
    "needed": "Helps needed",
    "helps": "Helps",
    "helper_id": "Helper",
    "leader_id": "Group leader",
    "size": "Group size",
    "members": "Members joined",
    "access": "Access",
    "added": "Added",
    "amount_paid_minor": "Amount paid",
    "approved_by": "Approved by",
    "attempts": "Attempts",
    "available": "Available points",
    "birthday": "Birthday",
    "cause": "Cause",
    "checksum": "Checksum",
    "city": "City",
    "closed": "Closed",
    "code": "Code",
    "consent": "Marketing consent",
    "deleted": "Deleted",
    "deliveries": "Deliveries",
    "disabled": "Disabled",
    "email": "Email",
    "entry_id": "Ledger entry",
    "event_id": "Event",
    "external_id": "Order number",
    "gender": "Gender",
    "home_store": "Home store",
    "home_store_id": "Home store",
    "kind": "Kind",
    "login": "Login",
    "member_id": "Member",
    "member_no": "Member number",
    "name": "Name",
    "note": "Note",
    "overlap_seconds": "Overlap (seconds)",
    "parent": "Parent unit",
    "pending": "Pending points",
    "personal_data": "Personal data",
    "phone": "Phone",
    "points": "Points",
    "points_clawed": "Points taken back",
    "points_earned": "Points earned",
    "points_paid": "Points paid",
    "points_restored": "Points given back",
    "preferred_store": "Preferred store",
    "quantity": "Quantity",
    "reason": "Reason",
    "refund_minor": "Refund",
    "request_id": "Approval request",
    "requested_by": "Requested by",
    "return_id": "Return number",
    "revoked": "Revoked",
    "reward": "Reward",
    "role": "Role",
    "run": "Run",
    "scope": "Scope",
    "sessions_closed": "Sessions ended",
    "since": "From",
    "source": "Source",
    "state": "State",
    "status": "Status",
    "stock_remaining": "Stock remaining",
    "store": "Store",
    "tags": "Tags",
    "tier": "Tier",
    "unit": "Organisation unit",
    "until": "Until",
    "value": "Value",
    "version": "Version",
    "approval_free_limit": "Approval-free limit (points)",
    # the fields of the features merged for issue 10 item 5 (coupons, referrals, documents,
    # messages, journeys, analytics): keys their services write to audit rows
    "active": "Active",
    "as_of": "As of",
    "categories": "Categories",
    "channel": "Channel",
    "channels": "Channels",
    "count": "Count",
    "exclusive": "Exclusive",
    "generation": "Generation",
    "granted": "Granted",
    "group": "Group",
    "priority": "Priority",
    "purpose": "Purpose",
    "referred_id": "Friend",
    "referrer_id": "Referrer",
    "remaining": "Remaining",
    "requested": "Codes requested",
    "skus": "SKUs",
    "stores": "Stores",
    "template": "Template",
    "template_id": "Template",
    "when": "Condition",
    "frozen": "Frozen",  # fraud controls (issue 13)
}

# Values that are codes of a closed set: shown by their labels.
VALUES: dict[str, str] = {
    "completed": "completed",
    "cancelled": "cancelled",
    "returned": "returned",
    "partially_returned": "partially returned",
    "recorded": "recorded",
    "collected": "collected",
    "pending": "pending",
    "approved": "approved",
    "rejected": "rejected",
    "hq_admin": "HQ admin",
    "regional_manager": "Regional manager",
    "store_staff": "Store staff",
    "service_agent": "Service agent",
    "analyst": "Analyst",
    "read_only": "read only",
    "read_write": "read and write",
    # kinds of versioned documents, coupons and coupon batches; coupon sources; referral
    # channels; message purposes (issue 10 item 5)
    "programme": "programme rules",
    "referrals": "referral rules",
    "journeys": "journeys",
    "messaging": "message templates",
    "habits": "check-ins and badges",
    "fraud": "fraud rules",  # fraud controls (issue 13)
    "amount_off": "amount off",
    "percent_off": "percent off",
    "free_item": "free item",
    "generated": "generated",
    "imported": "imported",
    "batch": "batch",
    "import": "imported",
    "staff": "staff",
    "api": "API",
    "reward": "reward",
    "action": "programme action",
    "join": "joined with a referral code",
    "claim": "claimed a referral",
    "marketing": "marketing",
    "transactional": "transactional",
    "active": "running",
    "paused": "paused",
    # activities (habits, issue 12)
    "signup": "sign-up",
    "profile": "profile completed",
    "birthday": "birthday month",
    "checkin": "check-in",
    "review": "product review",
    "survey": "survey answer",
    "share": "share",
}
_CODED = {"status", "state", "role", "access", "kind", "source", "channel", "purpose", "activity"}


def field(key: str, _: Callable[[str], str]) -> str:
    """A field's label in the page's language (the key itself when it has none)."""
    msgid = FIELDS.get(key)
    return _(msgid) if msgid else key


def value(
    key: str,
    v: Any,
    _: Callable[[str], str],
    money: Callable[[int], str],
    phone: Callable[[str], str],
    names: Mapping[str, Mapping[str, str]] | None = None,
) -> str | None:
    """A field's value in words, or None to show it as written: money from minor units,
    phones in national format (masked), booleans as yes/no, codes by their names (``names``
    maps a key such as ``tier`` or ``reward`` to code → display name)."""
    if isinstance(v, bool):
        return _("yes") if v else _("no")
    if key.endswith("_minor") and isinstance(v, int):
        return money(v)
    if key == "phone" and isinstance(v, str):
        return phone(v)
    if isinstance(v, str):
        if names and key in names and v in names[key]:
            return names[key][v]
        if key in _CODED and v in VALUES:
            return _(VALUES[v])
    return None
