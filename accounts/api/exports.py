"""Log rows as CSV or JSON, streamed: what `POST /api/logs/export` answers and the logs page's export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from django.db.models import QuerySet

from accounts.models import AuditLog, SystemLog

from . import serializers as s


def log_export_rows(kind: str, fmt: str, qs: QuerySet[SystemLog] | QuerySet[AuditLog]) -> Iterator[str]:
    """The rows of `qs` (`kind` ``system`` or ``audit``) as CSV (a header line first; a dict column as JSON)
    or as one JSON array, in chunks of text."""
    serializer_class: type[s.SystemLogSerializer] | type[s.AuditLogSerializer] = (
        s.SystemLogSerializer if kind == "system" else s.AuditLogSerializer
    )
    fields = list(serializer_class.Meta.fields)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(fields)
        yield buffer.getvalue()
        for row in qs.iterator(chunk_size=500):
            buffer.seek(0)
            buffer.truncate()
            data = serializer_class(row).data
            writer.writerow([json.dumps(data[f]) if isinstance(data[f], dict) else data[f] for f in fields])
            yield buffer.getvalue()
    else:
        yield "["
        for index, log in enumerate(qs.iterator(chunk_size=500)):
            yield ("," if index else "") + json.dumps(serializer_class(log).data, default=str)
        yield "]"
