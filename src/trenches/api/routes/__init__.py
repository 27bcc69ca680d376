"""The routes of ``/api/v1``, one module per noun. Every one declares its rule with
:class:`trenches.api.access.Allow`; none reaches the store but through the library."""
