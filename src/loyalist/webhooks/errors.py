"""Errors of the webhooks feature."""

from __future__ import annotations

from loyalist.errors import Conflict, NotFound, ValidationFailed


class EndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    title = "Webhook endpoint not found"


class DeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
    title = "Webhook delivery not found"


class TargetRefused(ValidationFailed):
    code = "webhook_target_refused"
    title = "The webhook URL cannot be delivered to"


class EndpointDisabled(Conflict):
    code = "webhook_endpoint_disabled"
    title = "The webhook endpoint is disabled"


class ReplayTooLarge(ValidationFailed):
    code = "webhook_replay_too_large"
    title = "Too many events to replay at once"
