"""Flask extension: REST endpoints to moderate people in LiveKit rooms."""
