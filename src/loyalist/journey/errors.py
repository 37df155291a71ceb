from __future__ import annotations

from loyalist.errors import NotFound


class JourneyNotFound(NotFound):
    code = "journey_not_found"
    title = "No such journey"


class RunNotFound(NotFound):
    code = "journey_run_not_found"
    title = "No such journey run"
