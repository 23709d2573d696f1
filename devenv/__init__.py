"""Development environment: a real Kafka broker, sample traffic, the demo."""
