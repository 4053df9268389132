"""What every command shares at its entry point."""

from __future__ import annotations

import os
import warnings


def quiet_libraries() -> None:
    """Keep library noise that says nothing to the user off the terminal (entry points only).

    Call it after the heavy imports: feast sets its own warning filters when it is imported.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # mlflow's SQLAlchemy store uses the deprecated noload strategy; ibis calls duckdb's renamed
    # fetch_arrow_table. Both are known and harmless (also filtered in pyproject.toml for tests).
    warnings.filterwarnings("ignore", message="The ``noload`` loader strategy is deprecated")
    warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated")
