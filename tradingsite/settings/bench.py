"""Benchmark settings (`make bench`): the test settings with production's persistent database connections.

The test settings close the connection after every request (`CONN_MAX_AGE = 0`) only so that test
databases can be dropped; production keeps them (base settings: 60 s). Opening a PostgreSQL connection
per webhook costs about 4 ms of web-process CPU here, so the benches use what production uses.
"""

from __future__ import annotations

from .test import *  # noqa: F403
from .test import DATABASES

DATABASES["default"]["CONN_MAX_AGE"] = 60
