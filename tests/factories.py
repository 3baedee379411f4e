import factory
from django.contrib.auth import get_user_model

from tests.testapp import models


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("secret")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda customer: f"{customer.name.replace(' ', '.').lower()}@example.com")


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Invoice

    number = factory.Sequence(lambda n: f"INV-{n:05d}")
    amount = factory.Faker("pydecimal", left_digits=4, right_digits=2, positive=True)


class UUIDThingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.UUIDThing

    name = factory.Sequence(lambda n: f"uuid thing {n}")


class BigThingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.BigThing

    name = factory.Sequence(lambda n: f"big thing {n}")


class SmallThingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.SmallThing

    name = factory.Sequence(lambda n: f"small thing {n}")


class CharThingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.CharThing

    code = factory.Sequence(lambda n: f"CODE-{n}")
    name = factory.Sequence(lambda n: f"char thing {n}")


class SpecialInvoiceFactory(InvoiceFactory):
    """A multi-table child of ``Invoice``: one row in each table, one log entry per table."""

    class Meta:
        model = models.SpecialInvoice

    priority = 1


class SecretFactory(factory.django.DjangoModelFactory):
    """A model some staff may not view (``codeword`` is stored in column ``cw``)."""

    class Meta:
        model = models.Secret

    codeword = factory.Sequence(lambda n: f"codeword {n}")


class TagFactory(factory.django.DjangoModelFactory):
    """A link target that is not audited itself."""

    class Meta:
        model = models.Tag

    name = factory.Sequence(lambda n: f"tag-{n}")


class ArticleFactory(factory.django.DjangoModelFactory):
    """An audited model with many-to-many fields (``tags`` logged, ``readers`` left out)."""

    class Meta:
        model = models.Article

    title = factory.Sequence(lambda n: f"Article {n}")
