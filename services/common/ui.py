"""What every service's UI page repeats once: an HTTP client that turns failures into one-line messages.

UI pages talk to their service over its public API, never to its internals, so the page works the
same against a local process, a container or a remote deployment.
"""

from __future__ import annotations

from typing import Any

import httpx


class ServiceError(Exception):
    """A failed call, worded for the person at the screen."""


class ServiceApi:
    def __init__(self, base_url: str, *, timeout_s: float = 30.0, admin_key: str | None = None, http: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # the key stays in this (server-side) process: Streamlit sends the browser pages, never this client's headers
        self._headers = {"X-Admin-Key": admin_key} if admin_key else {}
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def link(self, path: str) -> str:
        """An absolute link a browser can open, for paths the API returns (``/kb/articles/x``)."""
        return f"{self.base_url}{path}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, headers=self._headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceError(f"the service at {self.base_url} is not reachable ({type(exc).__name__}); is it running?") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
            raise ServiceError(f"{response.status_code}: {detail}")
        if body is None:
            raise ServiceError(f"{self.base_url}{path} answered {response.status_code} without JSON; is this the right service?")
        return body

    def health(self) -> dict[str, Any]:
        return self.call("GET", "/health")
