from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`, 50 by default, never more than 500 rows a page."""

    default_limit = 50
    max_limit = 500
