"""The seal chain's tables: one row per seal, and the per-chunk digests that localise a change.

``manage.py audit_log_seal`` writes them and ``manage.py audit_log_verify``
reads them (see :mod:`audit_log.seal`). They live in the ``audit_log`` app,
beside whichever log-entry model ``AUDIT_LOG_ENTRY_MODEL`` names, in the same
database as the log.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Seal(models.Model):
    """One link of the chain: a hash over the previous seal and every entry it covers.

    A seal covers the entries with ``after_id < id <= last_id`` (the first
    seal, whose ``after_id`` is None, every entry up to ``last_id``). Its
    ``hash`` is SHA-256, or HMAC-SHA256 with ``AUDIT_LOG_SEAL_KEY``, over
    ``previous_hash``, the fields below and each chunk's digests (see
    ``audit_log.seal.seal_message``); ``verified_at`` is outside it.
    """

    id = models.BigAutoField(primary_key=True)
    sealed_at = models.DateTimeField(_("sealed at"))
    after_id = models.BigIntegerField(null=True, help_text=_("The previous seal's last entry id (None: the first)."))
    first_id = models.BigIntegerField(null=True, help_text=_("The lowest entry id sealed (None: an empty seal)."))
    last_id = models.BigIntegerField(help_text=_("The highest entry id this seal covers."))
    entry_count = models.BigIntegerField()
    chunk_size = models.IntegerField(help_text=_("Entries are digested in blocks of this many ids."))
    columns = models.JSONField(help_text=_("The log table's columns the entries were hashed with."))
    algorithm = models.CharField(max_length=32, help_text=_('"sha256" or "hmac-sha256".'))
    key_id = models.CharField(max_length=32, blank=True, help_text=_("A fingerprint of the HMAC key, never the key."))
    # Unique: two seals made at once from the same predecessor cannot both commit.
    previous_hash = models.BinaryField(unique=True)
    hash = models.BinaryField()
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)

    objects: models.Manager[Seal] = models.Manager()

    class Meta:
        app_label = "audit_log"  # also importable where the app is not installed (abstract models only)
        ordering = ("-id",)
        verbose_name = _("audit log seal")
        verbose_name_plural = _("audit log seals")

    def __str__(self) -> str:
        return f"Seal #{self.id} of entries up to #{self.last_id}"


class SealChunk(models.Model):
    """The digests of one seal's entries in one block of ``chunk_size`` ids.

    ``digest`` is SHA-256 over each entry's id (8 bytes, big-endian) and
    SHA-256 of its canonical content, in id order; ``ids`` and ``digests``
    list the ids and the first 8 bytes of each entry's SHA-256, so a chunk
    whose digest no longer matches says which entries were changed, deleted
    or inserted (16 bytes per entry, about 4% of a typical log row).
    """

    id = models.BigAutoField(primary_key=True)
    seal = models.ForeignKey(Seal, on_delete=models.CASCADE, related_name="chunks")
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    entry_count = models.IntegerField()
    ids = models.BinaryField()
    digests = models.BinaryField()
    digest = models.BinaryField()

    seal_id: int
    objects: models.Manager[SealChunk] = models.Manager()

    class Meta:
        app_label = "audit_log"
        constraints = [models.UniqueConstraint(fields=["seal", "first_id"], name="audit_log_sealchunk_seal_first")]
        verbose_name = _("audit log seal chunk")
        verbose_name_plural = _("audit log seal chunks")

    def __str__(self) -> str:
        return f"Entries #{self.first_id}-#{self.last_id} of seal #{self.seal_id}"
