"""Friend-assist and group refusals: each a stable problem+json code."""

from __future__ import annotations

from loyalist.errors import Conflict, NotFound


class CampaignNotFound(NotFound):
    code = "campaign_not_found"
    title = "No such campaign"


class AssistNotFound(NotFound):
    code = "assist_not_found"
    title = "Assist not found"


class GroupNotFound(NotFound):
    code = "group_not_found"
    title = "Group not found"


class OwnAssist(Conflict):
    code = "own_assist"
    title = "The starter cannot help their own assist"


class AlreadyHelped(Conflict):
    code = "already_helped"
    title = "This friend already helped"


class AssistClosed(Conflict):
    code = "assist_closed"
    title = "This assist is complete or has expired"


class AlreadyStarted(Conflict):
    code = "assist_already_started"
    title = "This member already started this campaign"


class GroupClosed(Conflict):
    code = "group_closed"
    title = "This group is complete or dissolved"


class AlreadyInGroup(Conflict):
    code = "already_in_group"
    title = "This member is already in a group of this campaign"
