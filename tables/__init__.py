"""Every table, declared in one place (tables/state.py), and what agents and sinks share
over them (presence.py: route to the gateways; profile_updates.py: write profiles back)."""
