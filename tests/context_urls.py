"""The test URLs plus the context channel's edge-case views (used with override_settings)."""

from django.urls import path

from tests.testapp import context_views
from tests.urls import urlpatterns as base_urlpatterns

urlpatterns = [
    *base_urlpatterns,
    path("anywhere/<path:rest>", context_views.create_anywhere),
    path("anywhere/", context_views.create_anywhere),
    path("stream/", context_views.stream_writes),
    path("async-stream/", context_views.async_stream_writes),
]
