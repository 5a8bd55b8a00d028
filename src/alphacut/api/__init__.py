"""The HTTP service: routers and request/response models only; the work is in service/."""

from alphacut.api.app import create_app

__all__ = ["create_app"]
