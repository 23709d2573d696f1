"""Processing steps, one module each: an agent is an async loop you can read top to bottom."""
