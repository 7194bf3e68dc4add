"""The web app and REST API (FastAPI): `create_app(settings)` builds it; nothing happens at import."""
