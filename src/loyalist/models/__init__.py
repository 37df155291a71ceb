"""Every table in one place, so features can refer to each other's rows without cycles."""

from loyalist.models.action_receipt import ActionReceipt
from loyalist.models.adjustment_budget_use import AdjustmentBudgetUse
from loyalist.models.adjustment_request import AdjustmentRequest
from loyalist.models.analytics_run import AnalyticsRun
from loyalist.models.api_key import ApiKey
from loyalist.models.audit_log import AuditLog
from loyalist.models.config_document import ConfigDocument
from loyalist.models.dashboard_daily import DashboardDaily
from loyalist.models.dashboard_fold import DashboardFold
from loyalist.models.event_consumer import EventConsumer
from loyalist.models.event_failure import EventFailure
from loyalist.models.event_receipt import EventReceipt
from loyalist.models.idempotency_record import IdempotencyRecord
from loyalist.models.job import Job
from loyalist.models.job_run import JobRun
from loyalist.models.ledger_entry import LedgerEntry
from loyalist.models.lot_allocation import LotAllocation
from loyalist.models.member import Member
from loyalist.models.member_consent import MemberConsent
from loyalist.models.member_identity import MemberIdentity
from loyalist.models.member_login_code import MemberLoginCode
from loyalist.models.member_session import MemberSession
from loyalist.models.member_tag import MemberTag
from loyalist.models.member_task import MemberTask
from loyalist.models.message import Message
from loyalist.models.order import Order
from loyalist.models.order_line import OrderLine
from loyalist.models.order_return import OrderReturn
from loyalist.models.org_unit import OrgUnit
from loyalist.models.outbox_event import OutboxEvent
from loyalist.models.points_account import PointsAccount
from loyalist.models.points_account_member import PointsAccountMember
from loyalist.models.points_lot import PointsLot
from loyalist.models.programme_version import ProgrammeVersion
from loyalist.models.redemption import Redemption
from loyalist.models.reward import Reward
from loyalist.models.reward_usage import RewardUsage
from loyalist.models.staff_session import StaffSession
from loyalist.models.staff_user import StaffUser
from loyalist.models.tier_change import TierChange
from loyalist.models.webhook_attempt import WebhookAttempt
from loyalist.models.webhook_delivery import WebhookDelivery
from loyalist.models.webhook_endpoint import WebhookEndpoint

__all__ = [
    "ActionReceipt",
    "AdjustmentBudgetUse",
    "AdjustmentRequest",
    "AnalyticsRun",
    "ApiKey",
    "AuditLog",
    "ConfigDocument",
    "DashboardDaily",
    "DashboardFold",
    "EventConsumer",
    "EventFailure",
    "EventReceipt",
    "IdempotencyRecord",
    "Job",
    "JobRun",
    "LedgerEntry",
    "LotAllocation",
    "Member",
    "MemberConsent",
    "MemberIdentity",
    "MemberLoginCode",
    "MemberSession",
    "MemberTag",
    "MemberTask",
    "Message",
    "Order",
    "OrderLine",
    "OrderReturn",
    "OrgUnit",
    "OutboxEvent",
    "PointsAccount",
    "PointsAccountMember",
    "PointsLot",
    "ProgrammeVersion",
    "Redemption",
    "Reward",
    "RewardUsage",
    "StaffSession",
    "StaffUser",
    "TierChange",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
