"""Serving solution versions, in four rooms and one object between them.

- `inference/`: recommendations from a loaded solution version (`Predictor`) and what shapes a list:
  filters' catalogue, exploration, promotions, popular back-fill, personalized ranking, item metadata,
  cached user states, micro-batching of concurrent requests.
- `http/`: the boto3-compatible HTTP API: app factory, routes and their handlers, access controls,
  request/response models, the fast route, worker processes, and what the server reports (request records
  for the access log, Prometheus metrics, the OpenAPI document's errors).
- `jobs/`: batch inference and batch segment jobs over JSON lines (`python -m personalize_torch.batch`).
- `events/`: what the server records in its events database (PutEvents / PutItems / PutUsers, the
  deployment log that worker processes share) and what follows from it (auto-update).
- `campaigns.Campaigns`: the campaigns a server serves; requests read it, deploys, auto-updates and other
  workers' deploys change it.

Imports go one way: inference <- events <- campaigns <- http, and inference <- jobs.
"""
