"""A generation stamp for connection data, so a process may cache what it reads of it.

Any committed change to a connection, its secret record or other per-connection state a
reader caches (apps add their models with `track`) sets a new random stamp in Redis under
``<prefix>connections:generation``. A reader that tags what it loaded with the stamp it read
*before* loading knows its copy is stale as soon as the stamp differs: a change committed
after its read is always followed by a new stamp.

Redis keeps nothing on disk, so a missing stamp (a restarted server) means "unknown": the
first reader sets a fresh one (`ensure_script` does it in the same round trip as its read),
which no earlier copy carries. Without Redis there is no stamp and readers do not cache.
A stamp that could not be written (Redis unreachable at that moment) is logged; readers also
bound each copy's age, so a lost stamp costs at most that long.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any

import redis
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from synthorg.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)

# Lua: the stamp, set to ARGV (a fresh value) when missing. Embedded by scripts that read it
# beside other work (webhooks.gate), as `local generation = connections_generation(key, fresh)`.
GENERATION_FUNCTION = """
local function connections_generation(key, fresh)
  local value = redis.call('GET', key)
  if not value then
    redis.call('SET', key, fresh)
    value = fresh
  end
  return value
end
"""


def generation_key() -> str:
    return redis_key("connections", "generation")


def fresh_stamp() -> str:
    return uuid.uuid4().hex


def connections_changed() -> None:
    """Announce a change to connection data: at once, and again when the current transaction
    commits. The second stamp is the one that matters to other processes (a reader that
    loaded the row before the commit tagged it with the first); the first makes this
    connection's own uncommitted change visible to readers sharing it (a test's transaction)."""
    _new_stamp()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(_new_stamp)


def _new_stamp() -> None:
    client = get_redis()
    if client is None:
        return
    try:
        client.set(generation_key(), fresh_stamp())
    except redis.RedisError as exc:
        logger.warning("could not announce a connection change (cached copies expire on their own): %s", exc)


def track(model: Any, *, ignore: frozenset[str] = frozenset()) -> None:
    """Announce every save and delete of ``model``, except saves limited (``update_fields``) to
    the ``ignore`` fields, which no cached copy uses (a health probe's results, say). Bulk
    ``update()`` calls do not send signals: their callers call `connections_changed` themselves."""

    def changed(sender: Any, update_fields: frozenset[str] | None = None, **kwargs: Any) -> None:
        if update_fields and set(update_fields) <= ignore:
            return
        connections_changed()

    _receivers.append(changed)  # signals keep weak references
    post_save.connect(changed, sender=model, dispatch_uid=f"generation-save-{model._meta.label}")
    post_delete.connect(changed, sender=model, dispatch_uid=f"generation-delete-{model._meta.label}")


_receivers: list[Any] = []
