"""Benchmarks against a real Kafka broker, each next to its raw-aiokafka baseline.

Run from the repository root: ``python -m benchmarks.throughput``, ``python -m benchmarks.latency``.
"""
