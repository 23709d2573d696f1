"""Every table, declared in one place (tables/state.py)."""
