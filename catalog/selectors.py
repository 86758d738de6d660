"""Reads of the catalog and of installations."""
from __future__ import annotations

from django.db.models import QuerySet

from catalog.entries import CatalogEntry, bundled_catalog
from catalog.models import Installation, VerifyJob
from synthorg.config import get_config
from synthorg.errors import NotFound


class CatalogDisabled(NotFound):
    code = "mcp_catalog_disabled"
    default_detail = "The MCP catalog is turned off (integrations.mcp_catalog.enabled is false)."


def catalog_require_enabled() -> None:
    if not get_config().integrations.mcp_catalog.enabled:
        raise CatalogDisabled()


def catalog_list() -> list[CatalogEntry]:
    return list(bundled_catalog().values())


def catalog_entry_get(entry_id: str) -> CatalogEntry:
    entry = bundled_catalog().get(entry_id)
    if entry is None:
        raise NotFound(f"No catalog entry {entry_id!r}.", code="catalog_entry_not_found")
    return entry


def _score(entry: CatalogEntry, term: str) -> int:
    """How well one search term matches: name above tags above capabilities above description."""
    name = entry.name.lower()
    tags = [t.lower() for t in entry.tags]
    score = 0
    if term in (name, entry.id):
        score += 100
    elif name.startswith(term):
        score += 70
    elif term in name or term in entry.id:
        score += 50
    if term in tags:
        score += 30
    elif any(term in t for t in tags):
        score += 20
    if any(term in c for c in entry.capabilities):
        score += 15
    if term in entry.description.lower():
        score += 10
    return score


def catalog_search(query: str) -> list[CatalogEntry]:
    """Case-insensitive; every term must match somewhere; best matches first, then by name."""
    terms = query.lower().split()
    if not terms:
        return []
    scored = []
    for entry in bundled_catalog().values():
        scores = [_score(entry, term) for term in terms]
        if all(scores):
            scored.append((-sum(scores), entry.name.lower(), entry))
    return [entry for *_, entry in sorted(scored, key=lambda s: (s[0], s[1]))]


def installed_entry_ids() -> set[str]:
    return set(Installation.objects.values_list("entry_id", flat=True))


def installation_list() -> QuerySet[Installation]:
    return Installation.objects.select_related("connection").order_by("entry_id")


def installation_get(entry_id: str) -> Installation:
    # Only ids the catalog knows are looked up: a NUL byte never reaches PostgreSQL.
    if entry_id not in bundled_catalog():
        raise NotFound(f"{entry_id!r} is not installed.", code="not_installed")
    installation = Installation.objects.select_related("connection").filter(entry_id=entry_id).first()
    if installation is None:
        raise NotFound(f"{entry_id!r} is not installed.", code="not_installed")
    return installation


def verify_job_get(job_id: str) -> VerifyJob:
    job = VerifyJob.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"No verify job {job_id!r}.", code="verify_job_not_found")
    return job
