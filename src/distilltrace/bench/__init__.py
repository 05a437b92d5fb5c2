"""Benchmarks scored against ground truth, above the subsystems they measure (they import
provenance, marks, distill, models; no subsystem imports them). One module per benchmark,
its CLI command in `<name>_cli` (e.g. `provenance`, `provenance_cli`)."""
