"""The webhook receiver: unauthenticated, so it protects itself.

A plain Django view (no DRF, no session, CSRF-exempt): it reads the body itself, in chunks,
so a body over ``max_payload_bytes`` is refused with 413 after at most one chunk past the
limit, before Django's own DATA_UPLOAD_MAX_MEMORY_SIZE could turn it into a 400.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from synthorg.client_address import client_address
from synthorg.config import get_config
from synthorg.metrics import observed_receiver
from webhooks import receiver
from webhooks.rejections import rejection_record
from webhooks.verifiers.base import headers_from_environ

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
TOO_LARGE = {"detail": "The request body is too large.", "code": "payload_too_large"}


class BodyTooLarge(Exception):
    pass


def read_body(request: HttpRequest, limit: int) -> bytes:
    """The raw body, never more than ``limit`` bytes; ``BodyTooLarge`` as soon as it is passed."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared:
        try:
            length = int(declared)
        except ValueError:
            length = -1
        if length > limit:
            raise BodyTooLarge
        stream: Any = request  # Django's LimitedStream, bounded by Content-Length
    elif request.META.get("wsgi.input_terminated"):
        # Chunked transfer encoding (gunicorn): no length, so read the server's stream until it ends.
        stream = request.META["wsgi.input"]
    else:
        return b""
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(CHUNK_BYTES, limit + 1 - size))
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)


def storable(value: str) -> str:
    """A path value as it can be stored and logged: PostgreSQL text holds no NUL, so NULs are
    escaped (a name with one can never match a connection; it is only recorded)."""
    return value.replace("\x00", "\\x00")


def _respond(receipt: receiver.Receipt) -> HttpResponse:
    # json.dumps with its default encoder (JsonResponse builds a DjangoJSONEncoder per
    # response, a tenth of the receiver's CPU); a receipt holds only strings and numbers.
    response = HttpResponse(json.dumps(dict(receipt.body)), status=receipt.status, content_type="application/json")
    for name, value in receipt.headers.items():
        response[name] = value
    return response


# A body declared this small is read, and its signature checked on the cached connection,
# while the gate's Redis round trip is under way; a larger one only after the flood guard
# admitted the address (reading it is the cost the guard exists to spare).
EARLY_BODY_BYTES = CHUNK_BYTES


def declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


@csrf_exempt
@require_POST
@observed_receiver
def webhook_receive(request: HttpRequest, connection_name: str, event_type: str) -> HttpResponse:
    connection_name = storable(connection_name)
    # X-Forwarded-For only from integrations.trusted_proxies: a forged one never buys a fresh bucket.
    remote_ip = client_address(request.META)
    # Never a 503 for an unreachable Redis: the gate falls back to this process's budgets.
    pending = receiver.admit_begin(remote_ip=remote_ip, connection_name=connection_name)
    receipt: receiver.Receipt | None = None
    admission = None
    headers = headers_from_environ(request.META)  # folded once for every step below
    try:
        limit = get_config().integrations.webhooks.max_payload_bytes
        length = declared_length(request)
        body: bytes | None = None
        prepared = None
        if length is not None and length <= min(limit, EARLY_BODY_BYTES):
            body = read_body(request, limit)  # within the limit: never BodyTooLarge
            prepared = receiver.delivery_prepare(connection_name=connection_name, body=body, headers=headers)
        flooded, admission = receiver.admit_finish(pending, remote_ip=remote_ip)
        if flooded is not None:
            return _respond(flooded)
        if body is None:
            try:
                body = read_body(request, limit)
            except BodyTooLarge:
                rejection_record(connection=None, connection_name=connection_name, reason="payload_too_large",
                                 status=413, path_event_type=event_type, remote_ip=remote_ip)
                response = JsonResponse(TOO_LARGE, status=413)
                # The rest of the body stays unread: close the connection rather than drain it.
                response["Connection"] = "close"
                return response
        receipt = receiver.delivery_receive(
            connection_name=connection_name, path_event_type=event_type, body=body, headers=headers,
            content_type=request.META.get("CONTENT_TYPE", ""), remote_ip=remote_ip, admission=admission,
            prepared=prepared)
        return _respond(receipt)
    finally:
        if admission is None:
            # Failed before the gate's answer was read (the client went away mid-body): read it
            # now, so a reservation the request took still goes back below.
            admission = pending.result()
        pending.close()
        # A reservation of the connection's budget that no accepted delivery used goes back.
        if admission.flood_retry_after is None:
            receiver.release(admission, connection_name=connection_name,
                             receipt_status=receipt.status if receipt is not None else None)
