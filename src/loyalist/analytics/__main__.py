"""``python -m loyalist.analytics``: the ``analyze`` commands without the main CLI."""

from loyalist.analytics.cli import main

main()
