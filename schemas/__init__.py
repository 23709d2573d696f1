"""Pydantic v2 models: domain events (in), notifications, deliveries and receipts (out)."""
