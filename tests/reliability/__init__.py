"""Reliability: kill -9 cycles, dependency faults, hostile input (docs/reliability.md)."""
