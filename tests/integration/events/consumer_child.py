"""A worker process running one test consumer (started and SIGKILLed by the tests).

python -m tests.integration.events.consumer_child DB_URL PROGRESS_FILE [--until-idle]
Writes the position it is handling to PROGRESS_FILE (outside the database) before each
event, so the test can tell it was killed in the middle of a batch.
"""

from __future__ import annotations

import sys
import time

from sqlalchemy.orm import Session
from tests.integration.events.consumer_support import record_effect

from loyalist.events import consumers
from loyalist.kit.db import Database
from loyalist.models import OutboxEvent

NAME = "t.killed"


def main() -> None:
    url, progress = sys.argv[1], sys.argv[2]
    until_idle = "--until-idle" in sys.argv

    def handler(s: Session, ev: OutboxEvent) -> None:
        with open(progress, "w") as fh:
            fh.write(str(ev.position))
        record_effect(NAME, s, ev)
        time.sleep(0.002)

    consumers.consumer(NAME)(handler)
    db = Database(url)
    while True:
        n = consumers.run_pending(db, limit=200)
        if n == 0 and until_idle:
            break
        if n == 0:
            time.sleep(0.05)
    db.dispose()


if __name__ == "__main__":
    main()
