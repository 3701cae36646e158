"""Consumers: read certified products by name, or follow a consumer's certified versions as they are published.

``read_product`` / ``owning_lane``: one certified product, fail closed (``batchlane.read``, ``lane read``).
``consumer(name).follow()``: the consumer SDK (see ``batchlane.consume.sdk``), the same API locally and on AWS.
"""

from batchlane.consume.items import (
    AlreadyAcknowledgedError,
    CertifiedVersion,
    Delivery,
    Revocation,
)
from batchlane.consume.pinned import (
    LedgerReader,
    VersionNotInForce,
    read_pinned,
    resolve_pinned,
    version_state,
)
from batchlane.consume.reading import owning_lane, read_product
from batchlane.consume.sdk import Consumer, consumer
from batchlane.consume.sources import ConsumerConfigError

__all__ = [
    "AlreadyAcknowledgedError", "CertifiedVersion", "Consumer", "ConsumerConfigError", "Delivery", "LedgerReader",
    "Revocation", "VersionNotInForce", "consumer", "owning_lane", "read_pinned", "read_product", "resolve_pinned",
    "version_state",
]
