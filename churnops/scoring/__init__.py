"""Batch scoring: the whole active customer base scored by a registered model, as of a time."""
