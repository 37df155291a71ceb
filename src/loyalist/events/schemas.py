"""JSON Schemas (draft 2020-12) of the event envelope and of every event type's ``data``.

Published at ``GET /v1/events/schemas``; the test suite validates every event any test
emits against them, so a payload that drifts from its schema fails the build. A new event
type is added to ``events.service.EVENT_TYPES`` together with its entry in :data:`SCHEMAS`.
Payloads are closed (``additionalProperties: false``): a new field is a schema change, made
here, in the same commit.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, RootModel

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://loyalist.dev/schemas/events"

_INT: dict[str, Any] = {"type": "integer"}
_ID: dict[str, Any] = {"type": "integer", "minimum": 1}
_POINTS: dict[str, Any] = {"type": "integer", "minimum": 0}
_STR: dict[str, Any] = {"type": "string"}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_BY: dict[str, Any] = {"type": "string", "description": "who made the change"}
_BALANCE: dict[str, Any] = {
    "available": {**_INT, "description": "available points after the change"},
    "pending": {**_INT, "description": "pending points after the change"},
}


def _object(
    description: str, props: dict[str, Any], *, optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": props,
        "required": [k for k in props if k not in optional],
        "additionalProperties": False,
    }


def _entry(description: str, extra: dict[str, Any]) -> dict[str, Any]:
    """A points movement: the ledger entry, its member, and the balance after it."""
    return _object(
        description,
        {
            "member_id": _ID,
            "entry_id": _ID,
            "points": _POINTS,
            **extra,
            **_BALANCE,
            "account_id": {**_ID, "description": "the points account (a shared pool's id)"},
        },
    )


_DATE: dict[str, Any] = {"type": "string", "format": "date"}
_PASS_TERM: dict[str, Any] = {
    "member_id": _ID,
    "pass_id": _ID,
    "pass": _STR,
    "starts_on": {**_DATE, "description": "first local day covered"},
    "ends_on": {**_DATE, "description": "last local day covered"},
    "ends_at": {**_TIME, "description": "the local midnight after the period"},
    "price_minor": _POINTS,
    "order_id": {"type": ["integer", "null"], "minimum": 1},
}
_PASS_END: dict[str, Any] = {
    "member_id": _ID,
    "pass_id": _ID,
    "pass": _STR,
    "ends_on": _DATE,
    "ends_at": _TIME,
}


SCHEMAS: dict[str, dict[str, Any]] = {
    "member.created": _object(
        "A member joined.",
        {"member_id": _ID, "member_no": _STR, "tier": _STR, "by": _BY},
    ),
    "member.updated": _object(
        "A member's profile changed (the names of the changed fields; no personal data).",
        {"member_id": _ID, "fields": {"type": "array", "items": _STR}, "by": _BY},
    ),
    "order.recorded": _object(
        "An order was recorded (with or without a member).",
        {
            "order_id": _ID,
            "external_id": _STR,
            "member_id": {"type": ["integer", "null"], "minimum": 1},
            "store": _STR,
            "amount_paid_minor": {**_INT, "description": "money paid, minor units (fen)"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "points_earned": _POINTS,
            "points_paid": _POINTS,
        },
    ),
    "order.returned": _object(
        "An order was returned in full or in part.",
        {
            "order_id": _ID,
            "member_id": {"type": ["integer", "null"], "minimum": 1},
            "return_id": _STR,
            "refund_minor": _INT,
            "points_clawed": _POINTS,
            "points_waived": _POINTS,
            "points_restored": _POINTS,
            "points_expired": {
                **_POINTS,
                "description": "the returned lines' points that had already expired (taken "
                "from nowhere)",
            },
        },
    ),
    "points.earned": _entry(
        "Points were credited (as a lot, pending until available_at).",
        {
            "kind": _STR,
            "status": {"type": "string", "enum": ["pending", "available"]},
            "available_at": _TIME,
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "source_type": {"type": ["string", "null"]},
            "source_id": {"type": ["string", "null"]},
        },
    ),
    "points.activated": _entry("Pending points became available.", {"lot_id": _ID}),
    "points.redeemed": _entry("Points were spent.", {"kind": _STR}),
    "points.restored": _entry("Spent points were given back (a cancelled redemption).", {}),
    "points.expired": _entry("A lot's points expired.", {"lot_id": _ID}),
    "points.expiring": _object(
        "A reminder: points will expire soon.",
        {
            "member_id": _ID,
            "points": _POINTS,
            "expires_at": _TIME,
            "days_before": _POINTS,
        },
    ),
    "points.adjusted": {
        "description": "Staff adjusted a balance: a credit (entry and points only) or a debit "
        "(with the kind and the balance after it).",
        "oneOf": [
            _object(
                "A credit.",
                {"member_id": _ID, "entry_id": _ID, "points": _POINTS, "account_id": _ID},
            ),
            _entry("A debit.", {"kind": {"const": "adjust"}}),
        ],
    },
    "points.clawed_back": _entry(
        "Points were taken back (a returned order); what could not be taken is debt or waived.",
        {"debt": _POINTS, "waived": _POINTS},
    ),
    "tier.changed": _object(
        "A member moved to another tier.",
        {
            "member_id": _ID,
            "from": {"type": ["string", "null"]},
            "to": _STR,
            "reason": _STR,
            "metric": _STR,
            "value": _INT,
            "period": {"type": ["string", "null"]},
        },
    ),
    "redemption.created": _object(
        "A reward was redeemed.",
        {
            "redemption_id": _ID,
            "member_id": _ID,
            "reward": _STR,
            "quantity": _ID,
            "points": _POINTS,
            "cash_minor": _POINTS,
        },
    ),
    "redemption.cancelled": _object(
        "A redemption was cancelled (its points are restored).",
        {"redemption_id": _ID, "member_id": _ID, "points": _POINTS},
    ),
    "redemption.collected": _object(
        "A redeemed reward was handed over at the counter (collected once).",
        {
            "redemption_id": _ID,
            "member_id": _ID,
            "reward": {"type": ["string", "null"]},
            "store": {"type": ["string", "null"], "description": "where it was collected"},
        },
    ),
    # --- referrals and viral campaigns (issue 12) ---
    **{
        t: _object(
            d,
            {"referral_id": _ID, "referrer_id": _ID, "referred_id": _ID, **extra},
        )
        for t, d, extra in (
            (
                "referral.attributed",
                "A member joined with (or entered) another member's referral code.",
                {"channel": {"type": "string", "enum": ["join", "claim"]}},
            ),
            (
                "referral.held",
                "A referral waits for review: the friend shares identifiers with the referrer.",
                {"reasons": {"type": "array", "items": _STR}},
            ),
            (
                "referral.qualified",
                "The friend's first order passed its return window.",
                {"order_id": _ID},
            ),
            (
                "referral.rewarded",
                "Both sides (and the upline) were rewarded.",
                {"points": {**_POINTS, "description": "points awarded in all"}},
            ),
            (
                "referral.rejected",
                "A referral ended without reward.",
                {"reason": {"type": "string", "enum": ["order_returned", "review_rejected"]}},
            ),
            (
                "referral.clawed_back",
                "The qualifying order was returned after the reward; points were taken back.",
                {"points": _POINTS},
            ),
        )
    },
    "referral.leader": _object(
        "A member was one of a quarter's referral leaders (badges may react).",
        {
            "member_id": _ID,
            "period": {"type": "string", "pattern": "^[0-9]{4}Q[1-4]$"},
            "qualified": _ID,
        },
    ),
    "assist.completed": _object(
        "A friend-assist reached its number of helps; the starter is rewarded.",
        {"assist_id": _ID, "campaign": _STR, "starter_id": _ID, "helps": _ID},
    ),
    "group.completed": _object(
        "A group filled in time; every member is rewarded.",
        {"group_id": _ID, "campaign": _STR, "members": {"type": "array", "items": _ID}},
    ),
    "group.dissolved": _object(
        "A group did not fill by its deadline and dissolved with no reward.",
        {"group_id": _ID, "campaign": _STR, "members": _ID},
    ),
    "programme.published": _object(
        "A new programme version was published.", {"version": _ID, "by": _BY}
    ),
    "document.published": _object(
        "A new version of a configuration document (other than the programme) was published.",
        {
            "kind": {"type": "string", "description": "the document kind, e.g. survey"},
            "version": _ID,
            "checksum": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "by": _BY,
        },
    ),
    # --- coupons (issue 12) ---
    "coupon.issued": _object(
        "A coupon was issued to a member (by staff, the API, a reward or an action).",
        {"member_id": _ID, "template": _STR, "code_id": _ID, "source": _STR},
    ),
    "coupon.redeemed": _object(
        "Coupons were redeemed with an order (in the order's transaction).",
        {
            "member_id": {"type": ["integer", "null"]},
            "store": _STR,
            "order_external_id": _STR,
            "templates": {"type": "array", "items": _STR},
            "discount_minor": _POINTS,
        },
    ),
    "coupon.restored": _object(
        "A returned order gave its coupons' uses back (templates that restore on return).",
        {
            "member_id": {"type": ["integer", "null"]},
            "order_external_id": _STR,
            "templates": {"type": "array", "items": _STR},
            "discount_minor": _POINTS,
        },
    ),
    # --- trust (issue 13) ---
    "member.erased": _object(
        "A member's personal data was erased (right to be forgotten, or retention); their "
        "id, points, orders and history stay, without anything that identifies them.",
        {
            "member_id": _ID,
            "erased_at": _TIME,
            "reason": {"type": "string", "enum": ["request", "retention"]},
            "by": _BY,
        },
    ),
    "member.merged": _object(
        "A member (merged_id) was merged into another (survivor_id): identities, orders, "
        "coupons, history and open points lots (with their expiry) moved to the survivor; "
        "the merged id resolves to the survivor. Can be undone until undo_until.",
        {
            "merge_id": _ID,
            "survivor_id": _ID,
            "merged_id": _ID,
            "points": _INT,
            "pending": _INT,
            "tier": _STR,
            "undo_until": _TIME,
            "by": _BY,
        },
    ),
    "member.merge_undone": _object(
        "A merge was undone: everything that moved is back with the merged member.",
        {"merge_id": _ID, "survivor_id": _ID, "merged_id": _ID, "by": _BY},
    ),
    # --- fraud controls (issue 13) ---
    "fraud.held": _object(
        "A fraud rule held an order's points for review: they wait in a pending lot.",
        {
            "review_id": _ID,
            "member_id": _ID,
            "order_id": _ID,
            "points": _POINTS,
            "rule": _STR,
            "reason": _STR,
        },
    ),
    "fraud.reviewed": _object(
        "A reviewer decided on held points: approved (now available) or rejected (reversed).",
        {
            "review_id": _ID,
            "member_id": _ID,
            "order_id": _ID,
            "points": _POINTS,
            "decision": {"type": "string", "enum": ["approved", "rejected"]},
            "by": _BY,
        },
    ),
    "member.frozen": _object(
        "A member was frozen: redeeming and paying with points are refused until unfrozen.",
        {"member_id": _ID, "reason": _STR, "by": _BY},
    ),
    "member.unfrozen": _object(
        "A member's freeze was lifted.",
        {"member_id": _ID, "by": _BY},
    ),
    "ledger.checkpoint": _object(
        "The daily checkpoint of the ledger's hash chains was exported (a file of every "
        "account's head; keep the digest to compare the file with later).",
        {
            "date": {"type": "string", "format": "date", "description": "programme-local day"},
            "taken_at": _TIME,
            "accounts": {**_INT, "minimum": 0},
            "entries": {**_INT, "minimum": 0, "description": "entries chained in all"},
            "digest": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "file": {"type": "string", "description": "the checkpoint file's name"},
        },
    ),
    # --- habits (issue 12 items 4-7): check-ins, activities, badges, challenges, boards ---
    "checkin.recorded": _object(
        "A member checked in (once per local day of the programme, from its day start).",
        {
            "member_id": _ID,
            "checkin_id": _ID,
            "local_day": {"type": "string", "format": "date"},
            "streak": {**_ID, "description": "consecutive local days including this one"},
            "checked_at": _TIME,
        },
    ),
    "activity.recorded": _object(
        "A rewarded activity (sign-up, profile, birthday, check-in, review, survey, share).",
        {
            "member_id": _ID,
            "activity": _STR,
            "ref": _STR,
            "points": {**_POINTS, "description": "0 when a cap stopped the award"},
            "capped": {"type": ["string", "null"], "enum": ["day", "lifetime", None]},
        },
    ),
    "badge.awarded": _object(
        "A member earned a badge (once per member and badge).",
        {"member_id": _ID, "badge": _STR},
    ),
    "challenge.completed": _object(
        "A member completed a challenge (once per member and challenge).",
        {"member_id": _ID, "challenge": _STR, "progress": _POINTS, "goal": _ID},
    ),
    "leaderboard.closed": _object(
        "A leaderboard period ended and was archived (once per board and period).",
        {
            "board": _STR,
            "period_start": {"type": "string", "format": "date"},
            "period_end": {"type": "string", "format": "date"},
            "entries": _POINTS,
            "rewarded": _POINTS,
        },
    ),
    # --- households (issue 13, item 1) ---
    **{
        t: _object(d, {"household_id": _ID, "owner_member_id": _ID, **extra})
        for t, d, extra in (
            (
                "household.created",
                "A member became a household's main member.",
                {"account_id": _ID},
            ),
            (
                "household.invited",
                "The main member invited a member into the household.",
                {"invitation_id": _ID, "member_id": _ID, "can_spend": {"type": "boolean"}},
            ),
            (
                "household.joined",
                "An invited member accepted: they draw on the household's pool from now on.",
                {
                    "invitation_id": _ID,
                    "member_id": _ID,
                    "can_spend": {"type": "boolean"},
                    "points_transferred": {
                        **_INT,
                        "description": "their own points moved into the pool (with consent)",
                    },
                },
            ),
            (
                "household.declined",
                "An invited member declined.",
                {"invitation_id": _ID, "member_id": _ID},
            ),
            (
                "household.invitation_expired",
                "An invitation was not answered in time.",
                {"invitation_id": _ID, "member_id": _ID},
            ),
            (
                "household.permission_changed",
                "The main member granted or withdrew a member's permission to spend the pool.",
                {"member_id": _ID, "can_spend": {"type": "boolean"}},
            ),
            (
                "household.left",
                "A member left the household (no points moved; the pool keeps what they earned).",
                {
                    "member_id": _ID,
                    "reason": {"type": "string", "enum": ["left", "dissolved"]},
                    "pool_available": {**_INT, "description": "the pool's available points"},
                },
            ),
            (
                "household.dissolved",
                "The household was dissolved; its pool stays the main member's account.",
                {"member_id": _ID, "members": {"type": "array", "items": _ID}},
            ),
            (
                "household.invitation_withdrawn",
                "The main member withdrew a pending invitation.",
                {"invitation_id": _ID, "member_id": _ID},
            ),
        )
    },
    # --- paid membership (issue 15 item 7) ---
    "pass.purchased": _object("A member bought a pass (a new term).", _PASS_TERM),
    "pass.renewed": _object(
        "A member bought a pass while holding it: the new term starts at the current end.",
        _PASS_TERM,
    ),
    "pass.expiring": _object(
        "A pass term nobody renewed ends in 7 days or less (once per term).", _PASS_END
    ),
    "pass.expired": _object(
        "A pass term ended at the local midnight after its period and was not renewed.",
        _PASS_END,
    ),
    "pass.refunded": _object(
        "A pass term was refunded within its window: it ended, its unused coupons voided.",
        {
            "member_id": _ID,
            "pass_id": _ID,
            "pass": _STR,
            "price_minor": _POINTS,
            "coupons_voided": _POINTS,
        },
    ),
}


def data_schema(type_: str) -> dict[str, Any]:
    """The standalone JSON Schema of one event type's ``data``."""
    return {
        "$schema": DIALECT,
        "$id": f"{BASE_ID}/{type_}.json",
        "title": type_,
        **SCHEMAS[type_],
    }


def envelope_schema() -> dict[str, Any]:
    """The envelope of every event (as ``GET /v1/events`` and the exporters send it); its
    ``data`` is the schema of the event's type."""
    return {
        "$schema": DIALECT,
        "$id": f"{BASE_ID}/envelope.json",
        "title": "Loyalist event",
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "stable event id"},
            "sequence": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": "the stream position (the order events became visible)",
            },
            "type": {"type": "string", "enum": sorted(SCHEMAS)},
            "schema_version": {"type": "integer", "const": 1},
            "occurred_at": _TIME,
            "member_id": {"type": ["integer", "null"], "minimum": 1},
            "data": {"type": "object"},
        },
        "required": [
            "id",
            "sequence",
            "type",
            "schema_version",
            "occurred_at",
            "member_id",
            "data",
        ],
        "additionalProperties": False,
        "allOf": [
            {
                "if": {"properties": {"type": {"const": t}}},
                "then": {"properties": {"data": {"$ref": f"#/$defs/{t}"}}},
            }
            for t in sorted(SCHEMAS)
        ],
        "$defs": dict(sorted(SCHEMAS.items())),
    }


class EventDataSchema(RootModel[dict[str, Any]]):
    """A JSON Schema (draft 2020-12) of one event type's ``data``."""


class EventSchemas(BaseModel):
    """Every schema: the envelope and each type's data."""

    envelope: dict[str, Any] = Field(description="JSON Schema (2020-12) of the envelope")
    types: dict[str, dict[str, Any]] = Field(description="JSON Schema of each type's data")


def catalogue() -> EventSchemas:
    return EventSchemas(
        envelope=envelope_schema(), types={t: data_schema(t) for t in sorted(SCHEMAS)}
    )


# ── health ────────────────────────────────────────────────────────────────────────────
class ConsumerLagOut(BaseModel):
    """One consumer (or exporter) of the event stream and how far behind it is."""

    name: str
    position: int = Field(description="its checkpoint: the last stream position it handled")
    events_behind: int = Field(description="events of its types after the checkpoint")
    seconds_behind: float = Field(
        description="seconds between the newest event and the one at its checkpoint"
    )
    handled: int
    retrying: int = Field(description="events it waits at while retrying a failed handler")
    parked: int = Field(description="events it gave up on (see `loyalist stream parked`)")
    last_error: str | None = None


class StreamHealthOut(BaseModel):
    head: int = Field(description="the highest stream position")
    unpositioned: int = Field(description="committed events still waiting for a position")
    consumers: list[ConsumerLagOut]


class HealthOut(BaseModel):
    status: str = Field(description="ok, or degraded when a consumer has parked events")
    version: str
    stream: StreamHealthOut
