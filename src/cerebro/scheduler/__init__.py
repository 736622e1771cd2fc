"""The scheduler daemon: runs MOP units on worker connections, one per partition.

It is thin and stateless. Everything it knows is read back from the tables, so it may be
killed at any moment and restarted: a unit in flight is rolled back by PostgreSQL (its
transaction never commits) and is simply run again. Only one scheduler per database is active
(it holds an advisory lock on its leader connection); others wait as hot standbys.

One unit = one config on one partition: a training sub-epoch, or an evaluation on a partition
of the validation set. The unit's state never leaves the server: the training statement reads
the input state from ``cerebro.states`` (or the last checkpoint) and upserts the new one in
the same statement. The last unit of an epoch also commits the checkpoint, the metrics row
and the epoch counter, in the same transaction (exactly-once epoch accounting).

The parts, each named for its one job:

- ``statements``: every SQL statement the daemon issues, with the locks it relies on;
- ``connections``: the leader connection and the per-partition worker connections;
- ``leadership``: the advisory lock (active or hot standby) and the heartbeat row;
- ``recovery``: what a new leader repairs after its predecessor;
- ``planning``: the runnable configs (and the AutoML steps before each plan);
- ``unit``: what one unit is and the config its aggregate takes;
- ``runner``: runs a unit and books any outcome (one ``_finish_unit`` path);
- ``epoch``: the epoch commit (counter, checkpoint, metrics, AutoML decision);
- ``loop``: ``Scheduler`` (plan, run, collect, wait for NOTIFY) and ``serve``.
"""

from .leadership import LOCK_KEY
from .loop import Scheduler, serve
from .statements import CHANNEL

__all__ = ["CHANNEL", "LOCK_KEY", "Scheduler", "serve"]
