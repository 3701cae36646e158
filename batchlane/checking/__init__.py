"""Building blocks of the checker (`batchlane.checks` is the public entry point).

One module per job: file hashing, Arrow type matching, JSON evidence values,
exact Parquet footer statistics, key uniqueness, and the rule evaluators.
"""
