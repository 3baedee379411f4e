"""Views for the context channel's edge cases: streaming bodies, odd URLs, many parameters."""

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from .models import Invoice


@csrf_exempt
def create_anywhere(request: HttpRequest, rest: str = "") -> HttpResponse:
    # Never reads request.GET: a query it cannot parse must not matter.
    invoice = Invoice.objects.create(number="ANY-1")
    return JsonResponse({"id": invoice.pk})


def stream_writes(request: HttpRequest) -> StreamingHttpResponse:
    def body():
        try:
            yield b"start\n"
            Invoice.objects.create(number="STREAM-1")
            yield b"one\n"
            Invoice.objects.create(number="STREAM-2")
            yield b"two\n"
        finally:
            # Runs when the server closes the response early too.
            Invoice.objects.filter(number="STREAM-1").update(notes="closed")

    return StreamingHttpResponse(body())


async def async_stream_writes(request: HttpRequest) -> StreamingHttpResponse:
    async def body():
        yield b"start\n"
        await Invoice.objects.acreate(number="ASTREAM-1")
        yield b"one\n"
        await Invoice.objects.acreate(number="ASTREAM-2")
        yield b"two\n"

    return StreamingHttpResponse(body())
