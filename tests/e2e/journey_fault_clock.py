"""Loaded into ``loyalist worker`` processes by the journey fault test (hidden ``--import``):
moves the process's clock by LOYALIST_TEST_CLOCK_SHIFT_S seconds, as if days had passed."""

from __future__ import annotations

import os
from datetime import timedelta

from loyalist.kit.clock import clock

clock.advance(timedelta(seconds=float(os.environ.get("LOYALIST_TEST_CLOCK_SHIFT_S", "0"))))
