"""``manage.py seed_demo [--entries N]``: the demo history, and optionally a large generated one."""

import time

from django.core.management.base import CommandError
from django.db.models import Count, Max

from audit_log.loading import get_log_entry_model
from audit_log.management.base import AuditLoggedCommand
from sandbox.shop.demo import DemoError
from sandbox.shop.models import Customer, Order, Product
from sandbox.shop.scale import Generator
from sandbox.shop.story import Story

#: The command that starts the demo over, as the README gives it: ``make demo`` runs the
#: virtualenv's Python (a bare ``python`` outside it has no Django).
START_OVER = 'make demo ARGS="--reset"'


class Command(AuditLoggedCommand):
    help = (
        "Create the demo history: staff editing the shop through the admin, a bulk repricing command, raw-SQL "
        "fixes and deletions. Runs once: when the shop has data already it leaves it alone. With --entries N "
        "it then also generates at least N more log entries for trying the admin at scale (each run adds N)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--entries",
            type=int,
            # None, not 0: the log shows a command's options, and "seed_demo entries=0" read as "no entries".
            default=None,
            metavar="N",
            help="also generate at least N more log entries (e.g. 1000000) with set-based SQL",
        )

    def handle(self, *args, entries, **options):
        if entries is not None and entries < 0:
            raise CommandError("--entries must be 0 or more.")
        log = get_log_entry_model()._default_manager
        if Product.objects.exists() or Customer.objects.exists() or Order.objects.exists():
            self.stdout.write(
                f"The shop has data already ({log.count():,} log entries): the demo history is not created again. "
                f"To start over: {START_OVER}"
            )
        else:
            first_id = log.aggregate(last=Max("id"))["last"] or 0
            self.stdout.write("Creating the demo history:")
            try:
                Story(self.stdout.write).tell()
            except DemoError as error:
                raise CommandError(
                    f"The demo history stopped half-way: {error}\nStart over with: {START_OVER}"
                ) from error
            self.summarize(log.filter(id__gt=first_id))
        if entries:
            self.stdout.write(f"Generating at least {entries:,} more log entries:")
            started = time.monotonic()
            written = Generator(entries, self.stdout.write).run()
            seconds = time.monotonic() - started
            self.stdout.write(
                self.style.SUCCESS(
                    f"Generated {written:,} log entries in {seconds:.0f} s ({written / max(seconds, 0.001):,.0f}/s); "
                    f"the log now holds {log.count():,}."
                )
            )

    def summarize(self, entries):
        """Print how many entries the demo history has, by action, context type and user."""
        total = entries.count()
        self.stdout.write(self.style.SUCCESS(f"Created the demo history: {total} log entries."))
        for title, field in [("action", "action"), ("context", "context_type"), ("user", "performed_by_label")]:
            counts = entries.order_by().values(field).annotate(n=Count("id")).order_by("-n", field)
            parts = [f"{row[field] or '(nobody)'} {row['n']}" for row in counts]
            self.stdout.write(f"  by {title + ':':9}{', '.join(parts)}")
