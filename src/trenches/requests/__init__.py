"""The request log on the store's side.

- :mod:`.records`: the records, each shape declared once (a served request, a
  feedback), and the one codec between them, their database rows and their spool lines.

The server writes the log through :class:`trenches.serving.requestlog.RequestLog`, with
the same records. Nothing here loads until it is used.
"""
