"""Helpers for testing runeflow and its plugins.

``runeflow.testing.store_contract.StoreContract`` is the conformance suite every store runs
(it needs pytest, so it is imported from its own module).
"""
