"""Batch jobs over JSON lines, as Personalize's batch inference and batch segment jobs."""
