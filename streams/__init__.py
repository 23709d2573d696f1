"""Faust wiring: the app, its settings, every topic, the CLI."""
