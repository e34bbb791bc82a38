"""Benchmarks: each module has ``main(argv) -> int``, writes JSON and prints a summary."""
