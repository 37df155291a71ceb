"""The staff console at /admin: server-rendered Jinja2 + HTMX; calls services only."""
