"""Transforms the corpus cases name."""


def passthrough(items):
    return items


def needs_a_missing_column(items):
    return items[["item_id", "no_such_column"]]
