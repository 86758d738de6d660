"""Who may do what: the one table the API, the console (admin) and the commands ask.

Every operation a user can start has a name here (``connection.add``,
``connection.reveal_secret``, ``tunnel.control``) and a `Need`: the Django permissions it
takes. The API's permission class (`synthorg.api.permissions.ActionPermission`), the admin's
controls and the services that check a user all call `allowed()` / `require()` with these
names, so one operation cannot need one thing in the API and another in the console
(issue 12: staff status alone used to grant every write in the API).

Rules, as the Django admin has them:

* reads need ``view_<model>`` or ``change_<model>``; writes need ``add_``/``change_``/``delete_``;
* ``is_staff`` grants nothing by itself (it only opens the admin site's door);
* an active superuser holds every permission; an inactive user holds none.

Management commands run as the operator at the terminal, who can read the master key and
the database anyway: they are trusted and do not consult this table (their audit rows name
the command as the actor).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied


@dataclass(frozen=True)
class Need:
    """Granted to a user holding every permission of `all_of` and, when `any_of` is not
    empty, at least one of `any_of`."""

    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    def granted_to(self, user: Any) -> bool:
        if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
            return False
        if not all(user.has_perm(perm) for perm in self.all_of):
            return False
        return not self.any_of or any(user.has_perm(perm) for perm in self.any_of)

    def describe(self) -> str:
        parts = [" and ".join(self.all_of)] if self.all_of else []
        if self.any_of:
            alternatives = " or ".join(self.any_of)
            parts.append(f"({alternatives})" if self.all_of and len(self.any_of) > 1 else alternatives)
        return " and ".join(parts)


def _read(model: str) -> Need:
    """`app.model`: view or change, as the admin lets either read the change page."""
    app, name = model.split(".")
    return Need(any_of=(f"{app}.view_{name}", f"{app}.change_{name}"))


def _write(model: str, verb: str) -> Need:
    app, name = model.split(".")
    return Need(all_of=(f"{app}.{verb}_{name}",))


CONNECTION = "integrations.connection"
REVEAL_SECRET = "integrations.reveal_secret"  # noqa: S105  (a permission name)
CONTROL_TUNNEL = "integrations.control_tunnel"
VIEW_PAYLOAD = "webhooks.view_delivery_payload"
VERIFY_INSTALLATION = "catalog.verify_installation"

# action -> what it needs. Keep the README's "Security model / Permissions" table in step
# (tests/synthorg/test_permissions_table.py compares them).
ACTIONS: dict[str, Need] = {
    # connections
    "connection.view": _read(CONNECTION),
    "connection.add": _write(CONNECTION, "add"),
    "connection.change": _write(CONNECTION, "change"),
    "connection.delete": _write(CONNECTION, "delete"),
    "connection_type.view": Need(any_of=("integrations.view_connection", "integrations.change_connection",
                                         "integrations.add_connection")),
    # A forced probe sends the connection's secret to its destination now.
    "connection.check": _write(CONNECTION, "change"),
    "connection.reveal_secret": Need(all_of=(REVEAL_SECRET,)),
    # The answer carries the new signing secret: rotating is changing and revealing.
    "connection.signing_secret_rotate": Need(all_of=("integrations.change_connection", REVEAL_SECRET)),
    "health.view": _read(CONNECTION),
    # tunnel
    "tunnel.view": Need(any_of=("integrations.view_tunnelstate", CONTROL_TUNNEL)),
    "tunnel.control": Need(all_of=(CONTROL_TUNNEL,)),
    # webhooks
    "delivery.view": _read("webhooks.delivery"),
    "delivery.view_payload": Need(all_of=(VIEW_PAYLOAD,), any_of=("webhooks.view_delivery",
                                                                  "webhooks.change_delivery")),
    "trigger_rule.view": _read("webhooks.triggerrule"),
    "trigger_rule.add": _write("webhooks.triggerrule", "add"),
    "trigger_rule.change": _write("webhooks.triggerrule", "change"),
    "trigger_rule.delete": _write("webhooks.triggerrule", "delete"),
    "workflow_run.view": _read("webhooks.workflowrun"),
    "workflow_run.retry": _write("webhooks.workflowrun", "change"),
    # OAuth
    "oauth.status": _read("oauthflow.oauthtoken"),
    # Starting any grant may end with a token stored for the connection.
    "oauth.grant_start": _write("oauthflow.oauthtoken", "add"),
    # MCP catalog
    "mcp.view": _read("catalog.installation"),
    "mcp.install": _write("catalog.installation", "add"),
    "mcp.uninstall": _write("catalog.installation", "delete"),
    "mcp.verify": Need(all_of=(VERIFY_INSTALLATION,)),
    "mcp.verify_job.view": Need(any_of=(VERIFY_INSTALLATION, "catalog.view_verifyjob")),
    # providers
    "provider.view": _read("providers.providerconfig"),
    "provider.add": _write("providers.providerconfig", "add"),
    "provider.change": _write("providers.providerconfig", "change"),
    "provider.delete": _write("providers.providerconfig", "delete"),
    # Decrypts the credentials (never returning them) to see whether they resolve.
    "provider.resolve_check": _write("providers.providerconfig", "change"),
    # audit log
    "audit.view": Need(all_of=("synthorg.view_auditevent",)),
    # alerts (issue 16)
    "notification_sink.view": _read("notifications.notificationsink"),
    "notification_sink.add": _write("notifications.notificationsink", "add"),
    "notification_sink.change": _write("notifications.notificationsink", "change"),
    "notification_sink.delete": _write("notifications.notificationsink", "delete"),
    # A test alert makes the sink's connection send now, as a forced health check does.
    "notification_sink.test": Need(all_of=("notifications.test_notificationsink",)),
    "alert_rule.view": _read("notifications.alertrule"),
    "alert_rule.add": _write("notifications.alertrule", "add"),
    "alert_rule.change": _write("notifications.alertrule", "change"),
    "alert_rule.delete": _write("notifications.alertrule", "delete"),
    "problem.view": _read("notifications.problem"),
    "problem.acknowledge": _write("notifications.problem", "change"),
}


def need(action: str) -> Need:
    try:
        return ACTIONS[action]
    except KeyError:
        raise LookupError(f"No such action in synthorg.permissions.ACTIONS: {action!r}") from None


def allowed(user: Any, action: str) -> bool:
    return need(action).granted_to(user)


def denial_message(action: str) -> str:
    return f"This needs the {need(action).describe()} permission."


def require(user: Any, action: str) -> None:
    """Raise Django's PermissionDenied (403 in the admin and the API) unless `user` may."""
    if not allowed(user, action):
        raise PermissionDenied(denial_message(action))
