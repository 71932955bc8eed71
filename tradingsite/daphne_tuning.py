"""Turn off Twisted's POST form parsing in daphne's requests.

Twisted's `Request` parses the Content-Type of every POST with the `email` package and, for form
uploads, parses the whole body into `request.args` (`parsePOSTFormSubmission`, default on). Daphne never
reads `args`: it hands the raw body to the ASGI application, and Django parses forms itself. So the
parse is pure cost: about a tenth of a web process's CPU per webhook, and for multipart uploads a
second copy of the body in memory. Daphne creates its requests without the argument, so its request
class gets it as a default here. Imported by `tradingsite.asgi`, i.e. in every daphne process.

Twisted is pinned in requirements.txt for this; `install` refuses to start a Twisted whose `Request`
no longer takes the argument, rather than silently parsing again (or failing at the first request).
"""

from __future__ import annotations

import functools
import inspect

from daphne.http_protocol import WebRequest
from twisted.web.http import Request


def install() -> None:
    if getattr(WebRequest, "_form_parsing_off", False):
        return
    if "parsePOSTFormSubmission" not in inspect.signature(Request.__init__).parameters:
        raise RuntimeError("this Twisted's Request takes no parsePOSTFormSubmission: see requirements.txt's pin")
    WebRequest.__init__ = functools.partialmethod(WebRequest.__init__, parsePOSTFormSubmission=False)
    WebRequest._form_parsing_off = True
