"""Settings for mypy's Django plugin: the test settings, without starting a database."""

import os

# Type checking never connects; a URL keeps tools.postgres from starting an embedded server.
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/typecheck")

from tests.settings import *  # noqa: F403
