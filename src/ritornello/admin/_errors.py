"""Malformed query or path parameters answer 400 (not FastAPI's 422) with one readable
``detail`` string naming each bad parameter (``query parameter 'limit': Input should be ...``);
a malformed JSON body keeps FastAPI's 422 and its list of problems."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response


def _describe(problem: dict[str, object]) -> str:
    loc = problem.get("loc")
    parts = [str(p) for p in loc] if isinstance(loc, (list, tuple)) else []
    where = f"{parts[0]} parameter {'.'.join(parts[1:])!r}" if len(parts) > 1 else "request"
    return f"{where}: {problem.get('msg', 'invalid')}"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = list(exc.errors())
        if problems and all(p.get("loc", ("body",))[0] != "body" for p in problems):
            detail = "; ".join(_describe(p) for p in problems)
            return JSONResponse(status_code=400, content={"detail": detail})
        return await request_validation_exception_handler(request, exc)

    app.add_exception_handler(RequestValidationError, invalid)
