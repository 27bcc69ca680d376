"""The pages, one module per part of the UI. Every route declares its rule with
:class:`trenches.api.access.Allow` (deny by default) and is left out of the OpenAPI
document: pages are for people; programs use ``/api/v1``."""
