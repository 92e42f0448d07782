"""Helpers of tests/test_hostile.py: generated hostile input against the real middleware."""
