"""Backbone wiring: a service names itself and gets the client its deployment maps it to."""

from __future__ import annotations

from shared_backbone.client import BackboneClient, BackboneClients, load_deployment
from shared_backbone.settings import BackboneSettings

_registries: dict[tuple[str, str | None, str], BackboneClients] = {}


def backbone_for(service: str, deployment: str, profile: str | None, settings: BackboneSettings) -> BackboneClient:
    """The client for ``service``; services of one process that share an artifact share one model."""
    key = (deployment, profile, str(settings.artifacts_dir))
    if key not in _registries:
        _registries[key] = BackboneClients(load_deployment(deployment, settings.deploy_dir), settings, profile)
    return _registries[key].for_service(service)
