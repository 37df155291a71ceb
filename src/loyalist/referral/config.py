"""The ``referrals`` document: referral rules (老带新), friend-assist (好友助力) and group
(拼团) campaigns, versioned like every configuration document (``loyalist.documents``).

Rewards are lists of actions by registry name (``award_points``, ``issue_coupon`` once the
coupon feature registers it, ``add_tag`` …) with their parameters, validated against the
actions registry when the document is published.

Refused on purpose (Chinese rules on multi-level recruitment, 传销): a programme that
rewards head-count alone (``qualify`` other than a first paid order, a ``min_order_minor``
below 1 fen, leaders counted by sign-ups) and rewards deeper than two levels.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from loyalist.actions import registry as actions
from loyalist.actions.errors import ActionInvalid
from loyalist.documents import registry as documents
from loyalist.documents import service as document_service
from loyalist.documents.errors import DocumentInvalid, NoVersion
from loyalist.errors import FieldError
from loyalist.kit.documents import path_errors

KIND = "referrals"
SignalKind = Literal["device_id", "phone", "address", "payment_token"]
SIGNAL_KINDS: tuple[SignalKind, ...] = ("device_id", "phone", "address", "payment_token")
Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionRef(_Strict):
    """One effect: an action of the registry and its parameters."""

    action: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


Actions = Annotated[list[ActionRef], Field(max_length=10)]


class Rewards(_Strict):
    friend: Actions = Field(default_factory=list)  # the referred member
    referrer: Actions = Field(default_factory=list)  # level 1
    upline: Actions = Field(default_factory=list)  # level 2: the referrer's referrer


class Leaders(_Strict):
    """Quarterly referral leaders: enough qualified referrals in a quarter earn a bonus."""

    count: str = "qualified"
    min_qualified: int = Field(default=5, ge=1, le=10_000)
    rewards: Actions = Field(default_factory=list)

    @field_validator("count")
    @classmethod
    def _only_qualified(cls, v: str) -> str:
        if v != "qualified":
            raise ValueError(
                "leaders count qualified referrals only (a bonus for sign-ups alone rewards "
                "head-count, which is refused)"
            )
        return v


class ReferralRules(_Strict):
    enabled: bool = True
    qualify: str = "first_order"
    min_order_minor: int = Field(default=1, ge=1, le=100_000_000)
    return_window_days: int = Field(default=7, ge=0, le=90)
    after_return: Literal["claw_back", "keep"] = "claw_back"
    levels: int = Field(default=1, ge=1)
    rewards: Rewards = Field(default_factory=Rewards)
    hold_on_shared: list[SignalKind] = Field(default_factory=lambda: list(SIGNAL_KINDS))
    claim_days: int = Field(default=7, ge=0, le=90)
    share_url: str = Field(default="/m/join?ref={code}", max_length=300)
    leaders: Leaders = Field(default_factory=Leaders)

    @field_validator("qualify")
    @classmethod
    def _paid_order(cls, v: str) -> str:
        if v != "first_order":
            raise ValueError(
                "a referral qualifies by the friend's first paid order (first_order): "
                "rewarding sign-ups alone (head-count) is refused"
            )
        return v

    @field_validator("levels")
    @classmethod
    def _two_levels(cls, v: int) -> int:
        if v > 2:
            raise ValueError("rewards go at most two levels deep (multi-level recruitment)")
        return v

    @field_validator("share_url")
    @classmethod
    def _has_code(cls, v: str) -> str:
        if "{code}" not in v:
            raise ValueError("the share URL must contain {code}")
        return v


class Name(_Strict):
    zh_CN: str = Field(min_length=1, max_length=100)
    en: str = Field(min_length=1, max_length=100)


class AssistCampaign(_Strict):
    code: Slug
    name: Name
    helps: int = Field(ge=1, le=100)
    hours: int = Field(ge=1, le=720)
    rewards: Annotated[list[ActionRef], Field(min_length=1, max_length=10)]


class GroupCampaign(_Strict):
    code: Slug
    name: Name
    size: int = Field(ge=2, le=50)
    hours: int = Field(ge=1, le=720)
    rewards: Annotated[list[ActionRef], Field(min_length=1, max_length=10)]


class ReferralsDocument(_Strict):
    referral: ReferralRules = Field(default_factory=ReferralRules)
    assist: list[AssistCampaign] = Field(default_factory=list, max_length=50)
    groups: list[GroupCampaign] = Field(default_factory=list, max_length=50)

    def assist_campaign(self, code: str) -> AssistCampaign | None:
        return next((c for c in self.assist if c.code == code), None)

    def group_campaign(self, code: str) -> GroupCampaign | None:
        return next((c for c in self.groups if c.code == code), None)


def _action_errors(prefix: str, refs: list[ActionRef]) -> list[FieldError]:
    out: list[FieldError] = []
    for i, ref in enumerate(refs):
        try:
            actions.validate(ref.action, ref.params)
        except ActionInvalid as exc:
            for e in exc.errors or [FieldError("action", exc.detail)]:
                field = e.field if e.field.startswith("params") else "action"
                out.append(FieldError(f"{prefix}.{i}.{field}", e.message, e.code))
    return out


def parse(data: Any) -> ReferralsDocument:
    """The document validated, every problem named by its path (actions included)."""
    if not isinstance(data, dict):
        raise DocumentInvalid(
            "A referrals document must be a mapping.", [FieldError("$", "expected a mapping")]
        )
    try:
        doc = ReferralsDocument.model_validate(data)
    except ValidationError as exc:
        errors = [FieldError(e.path, e.message, e.type) for e in path_errors(exc)]
        raise DocumentInvalid(
            f"The referrals document has {len(errors)} error(s): "
            + "; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
            errors,
        ) from exc
    problems: list[FieldError] = []
    r = doc.referral.rewards
    problems += _action_errors("referral.rewards.friend", r.friend)
    problems += _action_errors("referral.rewards.referrer", r.referrer)
    problems += _action_errors("referral.rewards.upline", r.upline)
    if r.upline and doc.referral.levels < 2:
        problems.append(FieldError("referral.rewards.upline", "needs levels: 2", "invalid"))
    problems += _action_errors("referral.leaders.rewards", doc.referral.leaders.rewards)
    campaigns: list[tuple[str, list[tuple[str, list[ActionRef]]]]] = [
        ("assist", [(c.code, list(c.rewards)) for c in doc.assist]),
        ("groups", [(c.code, list(c.rewards)) for c in doc.groups]),
    ]
    for kind, items in campaigns:
        seen: set[str] = set()
        for i, (code, rewards) in enumerate(items):
            if code in seen:
                problems.append(FieldError(f"{kind}.{i}.code", "duplicate code", "duplicate"))
            seen.add(code)
            problems += _action_errors(f"{kind}.{i}.rewards", rewards)
    if problems:
        raise DocumentInvalid(
            f"The referrals document has {len(problems)} error(s): "
            + "; ".join(f"{e.field}: {e.message}" for e in problems[:5]),
            problems,
        )
    return doc


KIND_SPEC = documents.register(
    documents.Kind(
        name=KIND,
        description="Referral rules (老带新), friend-assist and group campaigns (裂变)",
        schema=ReferralsDocument,
        parser=parse,
    )
)

DEFAULT = ReferralsDocument()


def current(session: Session) -> ReferralsDocument:
    """The latest published ``referrals`` document (defaults when none was published)."""
    try:
        v = document_service.get(session, KIND)
    except NoVersion:
        return DEFAULT
    return ReferralsDocument.model_validate(v.document)
