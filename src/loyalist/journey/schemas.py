"""Journey API schemas: what /v1/journeys answers and accepts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalist.journey.domain import Journey
from loyalist.kit.db import MAX_INT4
from loyalist.kit.wire import Timestamp, document_schema

# The journey as the journeys document holds it: taken as raw JSON and checked by the
# service (errors name ``journey.<field>``), described by the document's model.
JourneyJSON = Annotated[dict[str, Any], document_schema(Journey, "JourneyDocument")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JourneyPut(Strict):
    """A journey to publish: the ``journeys`` document's next version has it (added, or
    replacing the journey with the same key)."""

    journey: JourneyJSON = Field(description="the journey, as in the document")
    note: str | None = Field(default=None, max_length=500)


class DryRunIn(Strict):
    member_id: int = Field(ge=1, le=MAX_INT4)
    events: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="awaited event types assumed to arrive (others time out)",
    )
    journey: JourneyJSON | None = Field(
        default=None, description="a draft to try instead of the published journey"
    )


class Edge(BaseModel):
    label: str
    to: str


class GraphStep(BaseModel):
    id: str
    type: str
    summary: str
    edges: list[Edge]


class StepCount(BaseModel):
    id: str
    type: str
    summary: str
    passed: int
    waiting: int
    outcomes: dict[str, int]


class FunnelOut(BaseModel):
    key: str
    entered: int
    active: int
    completed: int
    exited: int
    holdout: int
    steps: list[StepCount]


class JourneySummary(BaseModel):
    key: str
    name: str
    status: Literal["active", "paused"]
    trigger: str
    marketing: bool
    steps: int


class JourneyList(BaseModel):
    version: int | None
    holdout_percent: float
    items: list[JourneySummary]
    warnings: list[str]


class JourneyDetail(BaseModel):
    key: str
    name: str
    status: Literal["active", "paused"]
    version: int
    journey: dict[str, Any]
    graph: list[GraphStep]
    funnel: FunnelOut


class DryStepOut(BaseModel):
    step: str
    type: str
    outcome: str
    why: str
    at: Timestamp


class DryRunOut(BaseModel):
    journey: str
    member_id: int
    enters: bool
    why: str
    steps: list[DryStepOut]


class RunOut(BaseModel):
    id: int
    journey: str
    member_id: int
    version: int
    state: str
    step: str | None
    due_at: Timestamp | None
    waiting_event: str | None
    exit_reason: str | None
    variants: dict[str, Any]
    entered_at: Timestamp
    ended_at: Timestamp | None


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class RunStepOut(BaseModel):
    step: str
    type: str
    outcome: str
    detail: dict[str, Any]
    at: Timestamp


class RunDetail(RunOut):
    steps: list[RunStepOut]


class ComparisonOut(BaseModel):
    diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


class GroupOut(BaseModel):
    name: str
    weight: float
    members: int
    conversions: int
    revenue_minor: int
    conversion_rate: float
    revenue_per_member: float
    rate_vs_control: ComparisonOut | None
    revenue_vs_control: ComparisonOut | None


class SrmOut(BaseModel):
    chi2: float
    p_value: float
    flagged: bool


class ReadoutOut(BaseModel):
    journey: str
    experiment: str
    control: str
    conversion_event: str
    window_days: int
    groups: list[GroupOut]
    srm: SrmOut | None
