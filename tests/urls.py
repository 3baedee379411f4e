from django.contrib import admin
from django.urls import path, re_path

from tests.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("read/", views.read_only),
    path("create/", views.create_invoice),
    path("create-many/", views.create_many),
    path("fail/", views.create_then_fail),
    path("async-create/", views.async_create),
    # tests/benchmarks.py: one write per request; kind is "plain" or "audited"
    re_path(r"^bench/(?P<kind>plain|audited)/create/$", views.bench_create),
    re_path(r"^bench/(?P<kind>plain|audited)/(?P<pk>[0-9]+)/$", views.bench_read),
    re_path(r"^bench/(?P<kind>plain|audited)/(?P<pk>[0-9]+)/save/$", views.bench_save),
    re_path(r"^bench/(?P<kind>plain|audited)/(?P<pk>[0-9]+)/delete/$", views.bench_delete),
]
