"""The HTTP API, wire-compatible with boto3's personalize-runtime and personalize-events clients."""
