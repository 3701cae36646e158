"""batchlane: one-shot jobs, certified data products, write-once receipts, targeted reruns."""

__version__ = "0.1.0"


def read(output: str, *, lane: str | None = None, home: str | None = None):
    """A certified product as a pandas DataFrame; raises NotCertified unless a certification proves its bytes."""
    from batchlane.consume import read_product

    return read_product(output, lane=lane, home=home)
