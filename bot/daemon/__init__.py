"""`bot daemon` and `bot status`: find new mm series on the list and review each revision once, surviving crashes.

In: the list (polled), the queue in patchsets/bot.sqlite3. Out: every mm revision run through the pipeline
once, its row done or failed with the reason; `bot status` shows the queue, the running stage, the last
results.

  loop.py       rounds, one instance (flock), crash recovery, one revision through the pipeline
  classify.py   poll + which new series roots touch mm files
  mmfiles.py    MAINTAINERS' MEMORY MANAGEMENT patterns
  queue.py      the queue and runs tables
  leftovers.py  killing what a dead run left running
  status.py     `bot status`
"""

from bot.daemon.loop import main
from bot.daemon.status import collect, render

__all__ = ["collect", "main", "render"]
