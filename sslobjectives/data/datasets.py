"""Old home of the datasets: :mod:`~sslobjectives.data.dataset` (the dataset and its split),
:mod:`~sslobjectives.data.shapes`, :mod:`~sslobjectives.data.files` and
:mod:`~sslobjectives.data.sources` (the table of named sources, ``load_dataset``)."""

from sslobjectives.data.dataset import ImageDataset  # noqa: F401
from sslobjectives.data.shapes import SHAPE_FACTOR_RANGES, SHAPE_NAMES, make_shapes  # noqa: F401
from sslobjectives.data.sources import DATASET_NAMES, load_dataset  # noqa: F401
