"""`GET /review.csv`: the after-action review's incidents as CSV, in the reader's scope (RLS), one
row per incident with the times every figure of the review derives from."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, Response, request
from sqlalchemy.exc import SQLAlchemyError

from components.review import incidents_csv
from data.checks import InvalidQuery
from data.clock import CITY_TZ, parse_moment
from data.errors import OneScreenError, report_failure
from data.review import check_review, review_incidents
from web.services import read_engine
from web.session import current_principal, plain

log = logging.getLogger(__name__)

REVIEW_CSV_PATH = "/review.csv"
# a review reads up to a month of history: a person needs a few a minute, not more
REVIEW_RATE = "12 per minute"
DEFAULT_SPAN = timedelta(hours=24)


class OutOfScope(InvalidQuery):
    """A review of a district the reader may not see."""


@dataclass(frozen=True)
class ReviewQuery:
    """A review's window and area, checked."""

    start: datetime
    end: datetime
    district: str | None
    street: str | None


def review_query(args: Mapping[str, str | None], *, now: datetime) -> ReviewQuery:
    """The window (`from`, `to`; the last day by default) and area (`district`, `street`) a URL
    asks for; InvalidQuery when they are malformed or out of the reader's scope."""
    to, since = args.get("to"), args.get("from")
    end = parse_moment(to) if to else now.replace(second=0, microsecond=0)
    start = parse_moment(since) if since else end - DEFAULT_SPAN
    district = args.get("district") or None
    street = args.get("street") or None
    if street and not district:
        district = street[:6]
    check_review(start=start, end=end, district=district, street=street)
    principal = current_principal()
    if district is not None and (principal is None or not principal.allows(district)):
        raise OutOfScope("this district is outside your scope")
    return ReviewQuery(start, end, district, street)


def review_csv(query: ReviewQuery) -> str:
    """The incidents under review, in the reader's scope, as CSV text."""
    rows = review_incidents(
        read_engine(),
        start=query.start,
        end=query.end,
        district=query.district,
        street=query.street,
    )
    return incidents_csv(rows)


def register_review_routes(server: Flask) -> None:
    """Add GET /review.csv to the Flask server."""

    @server.get(REVIEW_CSV_PATH)
    def review_export() -> Response:
        try:
            query = review_query(request.args, now=datetime.now(CITY_TZ))
        except OutOfScope as exc:
            return plain(403, str(exc))
        except InvalidQuery as exc:
            return plain(400, str(exc))
        try:
            body = review_csv(query)
        except (SQLAlchemyError, OneScreenError) as exc:
            report_failure(log, "review export failed", exc)
            return plain(503, "the review is temporarily unavailable")
        stamp = query.start.astimezone(CITY_TZ).strftime("%Y%m%d-%H%M")
        place = query.street or query.district or "city"
        response = Response(body, mimetype="text/csv")
        response.headers["Content-Disposition"] = (
            f'attachment; filename="onescreen-review-{place}-{stamp}.csv"'
        )
        response.headers["Cache-Control"] = "private, no-store"
        return response
