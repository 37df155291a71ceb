"""Every table in one place, so features can refer to each other's rows without cycles."""

from loyalist.models.action_receipt import ActionReceipt
from loyalist.models.adjustment_budget_use import AdjustmentBudgetUse
from loyalist.models.adjustment_request import AdjustmentRequest
from loyalist.models.analytics_run import AnalyticsRun
from loyalist.models.api_key import ApiKey
from loyalist.models.audit_log import AuditLog
from loyalist.models.challenge_progress import ChallengeProgress
from loyalist.models.checkin import Checkin
from loyalist.models.config_document import ConfigDocument
from loyalist.models.consent_record import ConsentRecord
from loyalist.models.coupon_batch import CouponBatch
from loyalist.models.coupon_code import CouponCode
from loyalist.models.coupon_guess import CouponGuess
from loyalist.models.coupon_member_use import CouponMemberUse
from loyalist.models.coupon_redemption import CouponRedemption
from loyalist.models.coupon_template import CouponTemplate
from loyalist.models.dashboard_daily import DashboardDaily
from loyalist.models.dashboard_fold import DashboardFold
from loyalist.models.duplicate_candidate import DuplicateCandidate
from loyalist.models.event_consumer import EventConsumer
from loyalist.models.event_failure import EventFailure
from loyalist.models.event_receipt import EventReceipt
from loyalist.models.fraud_check import FraudCheck
from loyalist.models.fraud_counter import FraudCounter
from loyalist.models.fraud_device_member import FraudDeviceMember
from loyalist.models.fraud_review import FraudReview
from loyalist.models.habit_activity import HabitActivity
from loyalist.models.habit_fact import HabitFact
from loyalist.models.household import Household
from loyalist.models.household_invitation import HouseholdInvitation
from loyalist.models.idempotency_record import IdempotencyRecord
from loyalist.models.import_batch import ImportBatch
from loyalist.models.job import Job
from loyalist.models.job_run import JobRun
from loyalist.models.journey_run import JourneyRun
from loyalist.models.journey_state import JourneyState
from loyalist.models.journey_step import JourneyStep
from loyalist.models.leaderboard_period import LeaderboardPeriod
from loyalist.models.leaderboard_score import LeaderboardScore
from loyalist.models.ledger_entry import LedgerEntry
from loyalist.models.lot_allocation import LotAllocation
from loyalist.models.member import Member
from loyalist.models.member_badge import MemberBadge
from loyalist.models.member_consent import MemberConsent
from loyalist.models.member_freeze import MemberFreeze
from loyalist.models.member_identity import MemberIdentity
from loyalist.models.member_login_code import MemberLoginCode
from loyalist.models.member_merge import MemberMerge
from loyalist.models.member_pass import MemberPass
from loyalist.models.member_rfm import MemberRfm
from loyalist.models.member_session import MemberSession
from loyalist.models.member_tag import MemberTag
from loyalist.models.member_task import MemberTask
from loyalist.models.message import Message
from loyalist.models.message_attempt import MessageAttempt
from loyalist.models.message_authorisation import MessageAuthorisation
from loyalist.models.message_quota import MessageQuota
from loyalist.models.order import Order
from loyalist.models.order_line import OrderLine
from loyalist.models.order_return import OrderReturn
from loyalist.models.org_unit import OrgUnit
from loyalist.models.outbox_event import OutboxEvent
from loyalist.models.points_account import PointsAccount
from loyalist.models.points_account_member import PointsAccountMember
from loyalist.models.points_lot import PointsLot
from loyalist.models.programme_version import ProgrammeVersion
from loyalist.models.recommendation import Recommendation
from loyalist.models.redemption import Redemption
from loyalist.models.referral import Referral
from loyalist.models.referral_code import ReferralCode
from loyalist.models.referral_leader import ReferralLeader
from loyalist.models.referral_reward import ReferralReward
from loyalist.models.referral_signal import ReferralSignal
from loyalist.models.reward import Reward
from loyalist.models.reward_quote import RewardQuote
from loyalist.models.reward_usage import RewardUsage
from loyalist.models.staff_session import StaffSession
from loyalist.models.staff_user import StaffUser
from loyalist.models.tier_change import TierChange
from loyalist.models.viral_assist import ViralAssist
from loyalist.models.viral_assist_help import ViralAssistHelp
from loyalist.models.viral_group import ViralGroup
from loyalist.models.viral_group_member import ViralGroupMember
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
    "ChallengeProgress",
    "Checkin",
    "ConfigDocument",
    "ConsentRecord",
    "CouponBatch",
    "CouponCode",
    "CouponGuess",
    "CouponMemberUse",
    "CouponRedemption",
    "CouponTemplate",
    "DashboardDaily",
    "DashboardFold",
    "DuplicateCandidate",
    "EventConsumer",
    "EventFailure",
    "EventReceipt",
    "FraudCheck",
    "FraudCounter",
    "FraudDeviceMember",
    "FraudReview",
    "HabitActivity",
    "HabitFact",
    "Household",
    "HouseholdInvitation",
    "IdempotencyRecord",
    "ImportBatch",
    "Job",
    "JobRun",
    "JourneyRun",
    "JourneyState",
    "JourneyStep",
    "LeaderboardPeriod",
    "LeaderboardScore",
    "LedgerEntry",
    "LotAllocation",
    "Member",
    "MemberBadge",
    "MemberConsent",
    "MemberFreeze",
    "MemberIdentity",
    "MemberLoginCode",
    "MemberMerge",
    "MemberPass",
    "MemberRfm",
    "MemberSession",
    "MemberTag",
    "MemberTask",
    "Message",
    "MessageAttempt",
    "MessageAuthorisation",
    "MessageQuota",
    "Order",
    "OrderLine",
    "OrderReturn",
    "OrgUnit",
    "OutboxEvent",
    "PointsAccount",
    "PointsAccountMember",
    "PointsLot",
    "ProgrammeVersion",
    "Recommendation",
    "Redemption",
    "Referral",
    "ReferralCode",
    "ReferralLeader",
    "ReferralReward",
    "ReferralSignal",
    "Reward",
    "RewardQuote",
    "RewardUsage",
    "StaffSession",
    "StaffUser",
    "TierChange",
    "ViralAssist",
    "ViralAssistHelp",
    "ViralGroup",
    "ViralGroupMember",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
