"""The three products built on the backbone; each reaches it only through a BackboneClient."""
