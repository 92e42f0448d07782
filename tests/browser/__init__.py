"""Browser tests of the demo shop.

A package, so that its conftest and modules never clash with those of ``tests/``.
"""
