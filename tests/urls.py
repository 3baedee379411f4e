from django.contrib import admin
from django.urls import path

from tests.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("read/", views.read_only),
    path("create/", views.create_invoice),
    path("create-many/", views.create_many),
    path("fail/", views.create_then_fail),
    path("async-create/", views.async_create),
]
