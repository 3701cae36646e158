"""Reproducible benchmarks of the checker and the runner: ``python -m benchmarks [--quick]``.

Not part of the test run. Data is generated once (fixed seed) into benchmarks/data/.
"""
