"""``RequestContextMiddleware``: every change made while handling a request records the request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import FileResponse, HttpRequest, HttpResponseBase, StreamingHttpResponse

from .context import LazyContext, activate
from .loading import get_context_model


class RequestContextMiddleware:
    """Make each request the audit context of the changes it causes.

    Put it after ``AuthenticationMiddleware``. The context is built by the
    context model's ``create_from_request(request)`` (override it to record
    more) at the request's first write, on every PostgreSQL database, and
    applies until the response is returned or the view raises; the body of a
    ``StreamingHttpResponse`` is produced inside it too. Entering and leaving
    it send nothing to the database. Works under WSGI and ASGI, with sync and
    async views.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        """Handle ``request`` inside its audit context."""
        if self.async_mode:
            return self.__acall__(request)
        context = self.context_of(request)
        with activate(context):
            response: HttpResponseBase = self.get_response(request)
        return self._stream_inside(response, context)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        context = self.context_of(request)
        scope = activate(context)
        # Database connections belong to the thread that runs sync ORM code
        # (thread_sensitive), so enter and leave the context there.
        await sync_to_async(scope.__enter__)()
        try:
            response: HttpResponseBase = await self.get_response(request)
        finally:
            await sync_to_async(scope.__exit__)(None, None, None)
        return self._stream_inside(response, context)

    def context_of(self, request: HttpRequest) -> LazyContext:
        """Return the (not yet entered, not yet built) audit context of ``request``."""
        model = get_context_model()
        # Lenient: built from what the client sent, it must never cost a write.
        return LazyContext(lambda: model.create_from_request(request), strict=False)

    def _stream_inside(self, response: HttpResponseBase, context: LazyContext) -> HttpResponseBase:
        # A streaming body is produced after this middleware has returned:
        # enter the context again around each chunk. (A file is read, never
        # written, and wrapping it would lose the server's sendfile.)
        if not isinstance(response, StreamingHttpResponse) or isinstance(response, FileResponse):
            return response
        # The view's own iterator, which ours must close inside the context.
        # Django would close it first, outside the context, through
        # _resource_closers. Both attributes are private: without them the
        # view's iterator is wrapped as streaming_content gives it, and closed
        # by Django as before.
        inner: Any = getattr(response, "_iterator", None)
        if inner is None:
            inner = response.streaming_content
        closers = getattr(response, "_resource_closers", [])
        for closer in list(closers):
            if getattr(closer, "__self__", None) is inner:
                closers.remove(closer)
        if response.is_async:
            response.streaming_content = _astream(inner, context)
        else:
            response.streaming_content = _stream(inner, context)
        return response


def _stream(content: Iterable[Any], context: LazyContext) -> Iterator[Any]:
    iterator = iter(content)
    try:
        while True:
            with activate(context):
                try:
                    chunk = next(iterator)
                except StopIteration:
                    return
            yield chunk
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            with activate(context):  # a generator's cleanup may write too
                close()


async def _astream(content: AsyncIterator[Any], context: LazyContext) -> AsyncIterator[Any]:
    iterator = aiter(content)
    try:
        while True:
            scope = activate(context)
            await sync_to_async(scope.__enter__)()
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            finally:
                await sync_to_async(scope.__exit__)(None, None, None)
            yield chunk
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            scope = activate(context)
            await sync_to_async(scope.__enter__)()
            try:
                await aclose()
            finally:
                await sync_to_async(scope.__exit__)(None, None, None)


#: The name the original package used.
AuditLoggingMiddleware = RequestContextMiddleware
