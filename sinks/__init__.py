"""Channel sinks: one module per channel/provider."""
