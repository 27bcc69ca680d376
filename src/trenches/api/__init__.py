"""The team server: one store shared by a team over HTTP (``trenches server``).

- :mod:`.app`: the FastAPI application, its routers under ``/api/v1``, and the check,
  when it is built, that every route declares who may call it;
- :mod:`.access`: who is calling (a bearer token) and whether their roles allow the
  route's action on the dataset or model it is about (:class:`~.access.Allow`);
- :mod:`.errors`: every refusal as RFC 9457 problem details (``application/problem+json``);
- :mod:`.pages`: large lists, a page at a time;
- :mod:`.routes`: one module per noun, each route a function over the library;
- :mod:`.server`: uvicorn, one worker or many.

The model server, ``trenches serve``, is :mod:`trenches.serving`; this one serves the
store itself.
"""
