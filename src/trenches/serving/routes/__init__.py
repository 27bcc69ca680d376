"""The server's routes, one module per concept, each a FastAPI ``APIRouter`` of
module-level functions that reach the worker's state through a dependency
(:data:`~trenches.serving.state.ServerDep`):

- :mod:`.probes`: ``/ping``, ``/health``, ``/v2/health/live``, ``/v2/health/ready``,
  the only routes open without the token;
- :mod:`.mlflow`: the MLflow scoring protocol (``/invocations``, ``/version``);
- :mod:`.predict`: ``/predict``, a JSON list of records;
- :mod:`.v2`: the Open Inference Protocol (``/v2``, ``/v2/models/...``);
- :mod:`.feedback`: ``/feedback`` on a served request;
- :mod:`.metrics`: ``/metrics`` for Prometheus;
- :mod:`.docs`: the OpenAPI document and its pages.

:mod:`.prediction` is what the three protocols' routes share: one request, read,
answered, logged and counted.
"""
