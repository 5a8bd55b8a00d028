"""``GET /v1/models``: the models a request can name (alphacut's own endpoint, for the web page
and for clients choosing a model per request)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from alphacut.api.deps import KeyDep, ServicesDep
from alphacut.api.openapi import errors
from alphacut.models.registry import CATALOGUE

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get(
    "",
    summary="The models a request can name: fast, precise and every catalogue model",
    responses=errors(401),
)
def list_models(svc: ServicesDep, _key: KeyDep) -> dict[str, Any]:
    settings = svc.settings
    store = svc.store
    # Where the models run: this process's folder, or every live worker of a fleet (as they
    # report it; None, said as null, while no worker has).
    installed = svc.inference.installed()
    return {
        "default": settings.default_model,
        "aliases": dict(store.aliases),
        "models": [
            {
                "name": spec.name,
                "aliases": store.aliases_of(spec.name),
                "summary": spec.summary,
                "licence": spec.licence,
                "commercial_use": spec.commercial,
                "input_size": spec.recipe.size,
                "refine": spec.refine,
                "installed": None if installed is None else spec.name in installed,
            }
            for spec in CATALOGUE.values()
        ],
    }
