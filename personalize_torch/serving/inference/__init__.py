"""Recommendations from a loaded solution version, and everything that shapes one list."""
