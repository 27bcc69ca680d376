"""The request log on the store's side: ``store.requests``.

- :mod:`.records`: the records, each shape declared once (a served request, a
  feedback), and the one codec between them, their database rows and their spool lines;
- :mod:`.log`: :class:`~trenches.requests.log.Requests`, what ``store.requests`` is:
  listing, windows, feedback;
- :mod:`.window`: a window of the log read as columns (what monitoring reads);
- :mod:`.feedback`: feedback added by hand, and read back;
- :mod:`.patterns`: labelled requests made patterns.

The server writes the log through :class:`trenches.serving.requestlog.RequestLog`, with
the same records. Nothing here loads until it is used.
"""
