from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "sandbox.shop"
    label = "shop"
    verbose_name = "Shop"
