"""Each family's batches: one dynamic partition per arriving file (or API batch)."""

import dagster as dg

from .family import Family


def batches(family: Family) -> dg.DynamicPartitionsDefinition:
    """The family's dynamic partitions (definitions with the same name are equal, so builders may each call this)."""
    return dg.DynamicPartitionsDefinition(name=family.partitions_name)
