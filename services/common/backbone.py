"""Backbone wiring: a service names itself and gets the client its deployment maps it to.

With ``SPINE_BACKBONE_URL`` set the service talks to a backbone server (the launcher points each
service at the server of its artifact); without it the model is loaded in this process.
"""

from __future__ import annotations

from shared_backbone.client import BackboneClient, BackboneClients, load_deployment
from shared_backbone.remote import RemoteBackboneClient
from shared_backbone.settings import BackboneSettings

_registries: dict[tuple[str, str | None, str], BackboneClients] = {}
_remotes: dict[str, RemoteBackboneClient] = {}


def backbone_for(service: str, deployment: str, profile: str | None, settings: BackboneSettings) -> BackboneClient:
    """The client for ``service``; services of one process that share an artifact share one model."""
    if settings.backbone_url:
        if settings.backbone_url not in _remotes:
            _remotes[settings.backbone_url] = RemoteBackboneClient(
                settings.backbone_url,
                timeout_s=settings.backbone_timeout_s,
                retries=settings.backbone_retries,
                startup_wait_s=settings.backbone_startup_wait_s,
            )
        return _remotes[settings.backbone_url]
    key = (deployment, profile, str(settings.artifacts_dir))
    if key not in _registries:
        _registries[key] = BackboneClients(load_deployment(deployment, settings.deploy_dir), settings, profile)
    return _registries[key].for_service(service)
