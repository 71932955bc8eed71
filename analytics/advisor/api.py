"""`GET /api/advisor/reviews`: the signed-in user's own advisor reviews, newest first (docs/advisor.md#shown)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import AuthenticatedRequest, ReadOrTrader
from core.api import ApiError

from . import selectors

_SCHEMA: dict[str, Any] = {"type": "object"}
MAX_LIMIT = 100


class ReviewListView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(
        operation_id="advisor_reviews_list",
        parameters=[OpenApiParameter("limit", int, description=f"1 to {MAX_LIMIT}, default 30")],
        responses={200: _SCHEMA},
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        raw = request.query_params.get("limit") or "30"
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            detail = f"limit: a whole number from 1 to {MAX_LIMIT}"
            raise ApiError(status_code=400, code="invalid", detail=detail, fields={"limit": [detail]})
        reviews = selectors.review_list(user=request.user, limit=int(raw))
        return Response({"reviews": [selectors.review_describe(review) for review in reviews]})
