"""A web process: daphne on uvloop (`python -m tradingsite.web`, with daphne's own arguments).

daphne runs Twisted on an asyncio loop it makes at import; the policy set here makes that loop uvloop's.
The webhook route spends its time in the loop (HTTP, its database connections, Redis): with uvloop a
web process answers about 7% more webhooks for the same CPU (`make bench BENCH=webhook_ack`, 5 runs:
973 rps against 906). uvloop is already installed as a dependency of ccxt.
"""

import asyncio

import uvloop

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

from daphne.cli import CommandLineInterface  # noqa: E402

if __name__ == "__main__":
    CommandLineInterface.entrypoint()
