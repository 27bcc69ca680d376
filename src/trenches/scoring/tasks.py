"""The task a Dask worker runs for a scoring job: it reads its slice of an input file
itself (by path), predicts it with the version's model (loaded once per worker
process) and returns the predictions alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trenches.compute.tasks import worker_model
from trenches.errors import TrenchesError
from trenches.scoring import inputs
from trenches.scoring.rows import Predicted, predicted

if TYPE_CHECKING:
    from trenches.config import Location
    from trenches.models.versions import ModelVersion


def score_slice(
    opened: Callable[[Location], Any],
    location: Location,
    version: ModelVersion,
    trusted: bool,
    part: inputs.Slice,
) -> Predicted | TrenchesError:
    """On a worker: ``version``'s predictions on the rows of ``part``; the model is
    loaded from the store at ``location``, which ``opened`` opens. Bad input, or a
    model that may not load, is returned rather than raised: a task that raises is
    tried again (as one lost with its worker is), and these would fail the same way."""
    try:
        model = worker_model(opened(location).models, location, version, trusted)
        columns = version.signature.columns
        table = inputs.read(part, columns, needed=columns)
        return predicted(model, version, table, part)
    except TrenchesError as e:
        return e
