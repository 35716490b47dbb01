"""The events database (streamed events, items, users, deployments) and auto-update from it."""
