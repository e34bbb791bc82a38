"""Simulated node pools and pod execution (kwok-style) on a real control plane, for the demo,
the tests and the benchmarks: ``kubatch sim``. See docs/sim.md."""
