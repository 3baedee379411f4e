from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .models import Invoice


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
