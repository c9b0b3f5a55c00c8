"""staystream: real-time lodging prices and availability, ingest to search."""

__version__ = "0.1.0"
