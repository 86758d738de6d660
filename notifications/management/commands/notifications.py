"""`manage.py notifications sinks|add-sink|test|problems|ack|evaluate|sweep`: the alerts' command-line twin.

A sink's own secret (a Slack incoming-webhook URL) is read from stdin, never from argv (visible
in `ps` and shell history). A webhook sink's generated whsec_ secret is printed once, at creation.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifications import sending, services
from notifications.models import NotificationSink
from synthorg.errors import SynthorgError

ACTOR = "manage.py notifications"


class Command(BaseCommand):
    help = "Alerts: list sinks, add one, send a test alert, list and acknowledge problems."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("sinks", help="list the sinks")
        add = sub.add_parser("add-sink", help="create a sink")
        add.add_argument("name")
        add.add_argument("--kind", required=True, choices=["email", "slack", "slack_webhook", "webhook"])
        add.add_argument("--connection")
        add.add_argument("--settings", default="{}", help='JSON, e.g. {"to": ["ops@example.com"]}')
        add.add_argument("--secrets-from-stdin", action="store_true",
                         help='read {"webhook_url": ...} as JSON from stdin (slack_webhook)')
        test = sub.add_parser("test", help="send a test alert through a sink now")
        test.add_argument("sink", help="sink name or id")
        problems = sub.add_parser("problems", help="list problems")
        problems.add_argument("--state", choices=["pending", "open", "resolved", "live"], default="live")
        ack = sub.add_parser("ack", help="acknowledge a problem (no reminders until it resolves)")
        ack.add_argument("problem_id", type=int)
        sub.add_parser("evaluate", help="run the periodic evaluation once")
        sub.add_parser("sweep", help="send every alert that is due now, in this process")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"].replace("-", "_"))(options)
        except SynthorgError as exc:
            errors = f" {json.dumps(exc.errors)}" if exc.errors else ""
            raise CommandError(f"{exc.detail}{errors}") from None

    def _sinks(self, options: dict[str, Any]) -> None:
        for sink in NotificationSink.objects.select_related("connection").order_by("name"):
            connection = sink.connection.name if sink.connection else "-"
            state = "enabled" if sink.enabled else "disabled"
            self.stdout.write(f"{sink.pk}\t{sink.name}\t{sink.kind}\t{connection}\t{state}")

    def _add_sink(self, options: dict[str, Any]) -> None:
        try:
            settings = json.loads(options["settings"])
            secrets = json.loads(sys.stdin.read() or "{}") if options["secrets_from_stdin"] else {}
        except ValueError:
            raise CommandError("--settings and the stdin secrets are JSON objects") from None
        created = services.sink_create(name=options["name"], kind=options["kind"], connection=options["connection"],
                                       settings=settings, secrets=secrets, actor=ACTOR)
        self.stdout.write(f"created sink {created.sink.pk} {created.sink.name}")
        for field, value in created.shown_once.items():
            self.stdout.write(f"{field} (shown once, store it in the receiver now): {value}")

    def _sink(self, value: str) -> NotificationSink:
        sink = NotificationSink.objects.filter(pk=int(value)).first() if value.isdigit() else None
        sink = sink or NotificationSink.objects.filter(name=value).first()
        if sink is None:
            raise CommandError(f"no sink {value!r}")
        return sink

    def _test(self, options: dict[str, Any]) -> None:
        outcome = services.sink_test(sink_id=self._sink(options["sink"]).pk, actor=ACTOR)
        if outcome.result != "sent":
            raise CommandError(f"test alert {outcome.alert_id} failed: {outcome.error}")
        self.stdout.write(f"test alert {outcome.alert_id} sent")

    def _problems(self, options: dict[str, Any]) -> None:
        for problem in services.problems_list(state=options["state"]):
            ack = f"acknowledged by {problem.acknowledged_by}" if problem.acknowledged_at else ""
            self.stdout.write(f"{problem.pk}\t{problem.state}\t{problem.event}\t{problem.first_seen_at:%Y-%m-%d %H:%M}"
                              f"\t{problem.title}\t{ack}".rstrip())

    def _ack(self, options: dict[str, Any]) -> None:
        problem = services.problem_acknowledge(problem_id=options["problem_id"], actor=ACTOR)
        self.stdout.write(f"problem {problem.pk} acknowledged")

    def _evaluate(self, options: dict[str, Any]) -> None:
        report = services.problems_evaluate()
        self.stdout.write(f"evaluated {', '.join(report.evaluated)}; {report.orphans_resolved} orphaned problems "
                          f"resolved; {report.reminders} reminders")

    def _sweep(self, options: dict[str, Any]) -> None:
        results = [sending.alert_send(alert_id=alert_id) for alert_id in sending.alerts_due()]
        counts: dict[str, int] = {}
        for outcome in results:
            counts[outcome.result] = counts.get(outcome.result, 0) + 1
        self.stdout.write(", ".join(f"{n} {result}" for result, n in sorted(counts.items())) or "nothing due")
