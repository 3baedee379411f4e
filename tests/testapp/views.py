from decimal import Decimal

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import BenchAudited, BenchPlain, Invoice


def read_only(request: HttpRequest) -> HttpResponse:
    count = Invoice.objects.count()
    return HttpResponse(str(count))


@csrf_exempt  # driven by raw WSGI requests in tests
def create_invoice(request: HttpRequest) -> HttpResponse:
    # Like most views that write, it has looked at the user already.
    request.user.is_authenticated  # noqa: B018
    invoice = Invoice.objects.create(number=request.POST.get("number", "N-1"))
    return JsonResponse({"id": invoice.pk})


@csrf_exempt
def create_many(request: HttpRequest) -> HttpResponse:
    request.user.is_authenticated  # noqa: B018
    invoice = Invoice.objects.create(number="M-1")
    invoice.status = Invoice.Status.SENT
    invoice.save()
    Invoice.objects.filter(pk=invoice.pk).update(notes="bulk")
    return JsonResponse({"id": invoice.pk})


def create_then_fail(request: HttpRequest) -> HttpResponse:
    Invoice.objects.create(number="FAIL-1")
    raise RuntimeError("view failed after writing")


async def async_create(request: HttpRequest) -> HttpResponse:
    invoice = await Invoice.objects.acreate(number=request.GET.get("number", "A-1"))
    return JsonResponse({"id": invoice.pk})


# Benchmark views (tests/benchmarks.py): one write per request. The code is the same for both
# kinds; only the model differs (BenchPlain is not audited, BenchAudited is).
BENCH_MODELS = {"plain": BenchPlain, "audited": BenchAudited}


@csrf_exempt  # driven by raw WSGI requests in the benchmark
@require_POST
def bench_create(request: HttpRequest, kind: str) -> HttpResponse:
    # Like most views that write, it looks at the user first (free when anonymous: no session cookie).
    request.user.is_authenticated  # noqa: B018
    row = BENCH_MODELS[kind].objects.create(
        title="created",
        body="some longer body text for a benchmark row " * 3,
        quantity=1,
        price=Decimal("1.25"),
        active=True,
        created=timezone.now(),
        target_id=int(request.POST["target"]),
        note=None,
    )
    return JsonResponse({"id": row.pk})


@csrf_exempt
@require_POST
def bench_save(request: HttpRequest, kind: str, pk: str) -> HttpResponse:
    request.user.is_authenticated  # noqa: B018
    row = BENCH_MODELS[kind].objects.get(pk=pk)
    row.quantity += 1
    row.note = "changed"
    row.save()
    return JsonResponse({"id": row.pk})


@csrf_exempt
@require_POST
def bench_delete(request: HttpRequest, kind: str, pk: str) -> HttpResponse:
    request.user.is_authenticated  # noqa: B018
    BENCH_MODELS[kind].objects.get(pk=pk).delete()
    return JsonResponse({"id": int(pk)})


def bench_read(request: HttpRequest, kind: str, pk: str) -> HttpResponse:
    request.user.is_authenticated  # noqa: B018
    row = BENCH_MODELS[kind].objects.get(pk=pk)
    return JsonResponse({"id": row.pk, "title": row.title})
