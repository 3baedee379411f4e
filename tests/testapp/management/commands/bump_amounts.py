import datetime
import pathlib
from decimal import Decimal

from django.core.management.base import CommandParser

from audit_log.management.base import AuditLoggedCommand
from tests.testapp.models import Invoice


class Command(AuditLoggedCommand):
    help = "Add an amount to every invoice (test command)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("amount", type=Decimal)
        parser.add_argument("--since", type=datetime.date.fromisoformat, default=None)
        parser.add_argument("--out", type=pathlib.Path, default=None)
        parser.add_argument("--report", type=open, default=None)
        parser.add_argument("--fail", action="store_true", help="raise after the first change")

    def handle(self, *args, **options):
        for invoice in Invoice.objects.all():
            invoice.amount += options["amount"]
            invoice.save(update_fields=["amount"])
            if options["fail"]:
                raise RuntimeError("command failed")
