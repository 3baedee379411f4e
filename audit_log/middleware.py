"""``RequestContextMiddleware``: every change made while handling a request records the request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase

from .context import LazyContext, activate
from .loading import get_context_model


class RequestContextMiddleware:
    """Make each request the audit context of the changes it causes.

    Put it after ``AuthenticationMiddleware``. The context is built by the
    context model's ``create_from_request(request)`` (override it to record
    more) at the request's first write, on every PostgreSQL database; it is
    cleared when the response is returned or the view raises. Works under WSGI
    and ASGI, with sync and async views.
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
        with self.context_of(request):
            return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        scope = self.context_of(request)
        # Database connections belong to the thread that runs sync ORM code
        # (thread_sensitive), so enter and leave the context there.
        await sync_to_async(scope.__enter__)()
        try:
            response: HttpResponseBase = await self.get_response(request)
        finally:
            await sync_to_async(scope.__exit__)(None, None, None)  # clears whether the view raised or not
        return response

    def context_of(self, request: HttpRequest) -> AbstractContextManager[LazyContext]:
        """Return the (not yet entered) audit context of ``request`` on every PostgreSQL database."""
        model = get_context_model()
        return activate(lambda: model.create_from_request(request))


#: The name the original package used.
AuditLoggingMiddleware = RequestContextMiddleware
