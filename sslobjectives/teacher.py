"""Old home of the EMA teacher: it lives in :mod:`sslobjectives.models.teacher`."""

from sslobjectives.models.teacher import EMATeacher, cosine_momentum  # noqa: F401
