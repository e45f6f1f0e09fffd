"""The admin key that guards every write or admin route; it is read from the environment only."""

from __future__ import annotations

import secrets

from fastapi import Header, HTTPException, Request, status


def require_admin(request: Request, x_admin_key: str | None = Header(default=None)) -> None:
    """403 unless ``X-Admin-Key`` matches ``SPINE_ADMIN_API_KEY``; 503 when no key is configured."""
    configured = request.app.state.settings.admin_api_key
    if configured is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "admin routes are disabled: set SPINE_ADMIN_API_KEY")
    if x_admin_key is None or not secrets.compare_digest(x_admin_key.encode(), configured.get_secret_value().encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong X-Admin-Key header")
