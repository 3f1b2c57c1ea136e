"""The admin API (FastAPI, port 9070): deployments, services, invocations."""

from ritornello.admin._app import create_app

__all__ = ["create_app"]
