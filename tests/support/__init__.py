"""Test harnesses: real environments for the suite and the benchmarks (never shipped)."""
