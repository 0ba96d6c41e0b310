"""The unit tier: no database; runs in seconds without a server."""
