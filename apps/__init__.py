"""The faces of the platform: the `spine` CLI, and later the UI and the launchers."""
