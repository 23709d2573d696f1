"""An OpenAPI 3.1 description built from route descriptions and the pydantic models that
the views answer with, so the document cannot drift from the responses' shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" or "query"
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Route:
    path: str  # aiohttp style: /admin/tables/inbox/{key}
    summary: str
    description: str
    response: type[BaseModel]
    params: tuple[Param, ...] = ()
    secured: bool = True
    tag: str = "admin"


# Every secured route may answer these besides 200 (the body is always ErrorBody).
_ERRORS = {
    "400": "Bad parameter (e.g. `limit`).",
    "401": "No `Authorization: Bearer` header.",
    "403": "Wrong token, or CLARION_ADMIN_TOKEN is not set on the worker.",
    "503": "The worker is starting or rebalancing, or does not own the key's partition now.",
    "508": "Workers forwarded the request to each other (assignment changing): retry.",
}


def build(
    title: str,
    version: str,
    description: str,
    routes: list[Route],
    error_model: type[BaseModel],
) -> dict[str, Any]:
    models = {r.response for r in routes} | {error_model}
    keyed, schemas = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template=_REF,
    )
    refs = {m: keyed[(m, "serialization")] for m in models}
    paths: dict[str, Any] = {}
    for route in routes:
        params = list(route.params)
        responses: dict[str, Any] = {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": refs[route.response]}},
            }
        }
        if route.secured:
            for status, text in _ERRORS.items():
                responses[status] = {
                    "description": text,
                    "content": {"application/json": {"schema": refs[error_model]}},
                }
        operation: dict[str, Any] = {
            "operationId": _operation_id(route.path),
            "summary": route.summary,
            "description": route.description,
            "tags": [route.tag],
            "parameters": [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required or p.where == "path",
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in params
            ],
            "responses": responses,
            "security": [{"adminToken": []}] if route.secured else [],
        }
        paths[route.path] = {"get": operation}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The value of CLARION_ADMIN_TOKEN.",
                }
            },
        },
    }


def _operation_id(path: str) -> str:
    parts = [p.strip("{}").replace("-", "_") for p in path.strip("/").split("/") if p]
    return "_".join(parts) or "root"
