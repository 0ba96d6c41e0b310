"""The integration tier: against a real PostgreSQL (see tests/conftest.py)."""
