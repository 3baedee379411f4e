import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from audit_log.fields import AuditLogsField
from audit_log.models import AuditLoggedModel, BaseContext, BaseLogEntry


class AuditLogContext(BaseContext):
    tenant = models.CharField(max_length=50, blank=True, default="")

    class Meta:
        managed = False


class AuditLogEntry(BaseLogEntry):
    tenant = models.CharField(max_length=50, blank=True, default="")


class Customer(AuditLoggedModel):
    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    password = models.CharField(max_length=128, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    audit_logs = AuditLogsField(exclude=["last_seen"], mask=["password"])

    def __str__(self):
        return self.name


class Invoice(AuditLoggedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SENT = "sent", "Sent"
        PAID = "paid", "Paid"

    number = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL)
    notes = models.TextField(blank=True)

    def __str__(self):
        return self.number


class Secret(AuditLoggedModel):
    """An audited model that some staff may not view: the admin keeps its entries from them."""

    codeword = models.CharField(max_length=50, db_column="cw")


class NotAudited(models.Model):
    name = models.CharField(max_length=100)


class UUIDThing(AuditLoggedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=100)


class BigThing(AuditLoggedModel):
    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100)


class SmallThing(AuditLoggedModel):
    id = models.AutoField(primary_key=True)
    name = models.CharField(max_length=100)


class CharThing(AuditLoggedModel):
    code = models.CharField(max_length=30, primary_key=True)
    name = models.CharField(max_length=100)


class WeirdName(AuditLoggedModel):
    camel = models.CharField(max_length=50, db_column="CamelCol")
    spaced = models.IntegerField(default=0, db_column="with space-and-hyphen")
    # Django leaves a name that starts and ends with a double quote as it is.
    quoted = models.IntegerField(default=0, db_column='"Quoted Col"', verbose_name="quoted number")

    class Meta:
        db_table = "Weird Name-Tbl"


class Awkward(AuditLoggedModel):
    amount = models.DecimalField(max_digits=20, decimal_places=5, null=True)
    day = models.DateField(null=True)
    moment = models.DateTimeField(null=True)
    blob = models.BinaryField(null=True)
    tags = ArrayField(models.CharField(max_length=50), null=True)
    data = models.JSONField(null=True)
    text = models.TextField(blank=True)
    ratio = models.FloatField(null=True)


class Tag(models.Model):
    """What articles are tagged with; not audited itself (a link's target need not be)."""

    name = models.CharField(max_length=50, unique=True)

    def __str__(self):
        return self.name


class Article(AuditLoggedModel):
    """Many-to-many fields: links logged under the article, a self-referential one, and one left out."""

    title = models.CharField(max_length=100)
    tags = models.ManyToManyField(Tag, blank=True, related_name="articles")
    related = models.ManyToManyField("self", blank=True)
    readers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")

    audit_logs = AuditLogsField(m2m_exclude=["readers"])

    def __str__(self):
        return self.title


class SpecialInvoice(Invoice):
    """Multi-table inheritance child of an audited model."""

    priority = models.IntegerField(default=0)


# --- benchmark models: the same eight columns, plain and audited -------------


class BenchTarget(models.Model):
    name = models.CharField(max_length=50)


class BenchColumns(models.Model):
    title = models.CharField(max_length=100)
    body = models.TextField()
    quantity = models.IntegerField()
    price = models.DecimalField(max_digits=12, decimal_places=2)
    active = models.BooleanField(default=True)
    created = models.DateTimeField()
    target = models.ForeignKey(BenchTarget, on_delete=models.CASCADE)
    note = models.CharField(max_length=50, null=True)

    class Meta:
        abstract = True


class BenchPlain(BenchColumns):
    pass


class BenchAudited(BenchColumns, AuditLoggedModel):
    pass
