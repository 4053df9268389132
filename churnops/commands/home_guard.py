"""Before a command runs: is there anything in the ChurnOps home for it to work on?

Run in an empty home (a new checkout, another directory, a mistyped ``CHURNOPS_HOME``), most
commands used to create ``./.churnops`` on the way, show empty tables or end in a library's
traceback. The CLI wraps every command with :func:`check_home`: a command whose inputs
live in the home and are missing exits 2 with the home in use and what to run first, and
nothing is created. Only inputs that are local are checked: a remote MLflow or Feast registry
is the service's business (the command's own errors cover it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from churnops.settings import Settings

Need = Literal["sources", "feast", "mlflow"]

# What each command needs from the home (by its path under `churnops`). Commands not listed
# (data ingest|generate, demo, simulate, registry migrate) create what they need; `serve` starts on any
# home and waits for a Production model (/readyz is 503 until one is promoted), as does
# `loop ui` (Dagster's UI and daemon: the sensor skips until the registry exists); `registry keys`
# works on key files that CHURNOPS_SIGNING_KEY_FILE / CHURNOPS_TRUSTED_KEYS_FILE may put anywhere.
NEEDS: dict[str, tuple[Need, ...]] = {
    "features apply": ("sources",),
    "features materialize": ("sources", "feast"),
    "features training-set": ("sources", "feast"),
    "features online": ("sources", "feast"),
    "train": ("sources", "feast"),
    "retrain check": ("sources", "mlflow"),
    "retrain run": ("sources", "feast"),
    "registry list": ("mlflow",),
    "registry show": ("mlflow",),
    "registry promote": ("mlflow",),
    "registry audit": ("mlflow",),
    "registry compare": ("mlflow",),
    "registry search": ("mlflow",),
    "registry rollback": ("mlflow",),
    "registry reconcile": ("mlflow",),
    "registry adopt": ("mlflow",),
    "registry delete-unregistered": ("mlflow",),
    "score": ("sources",),
    "monitor drift": ("mlflow",),
    "monitor performance": ("mlflow",),
    "log compact": ("mlflow",),
    "loop run": ("sources", "feast"),  # a prediction log needs a model that scored first
}

FIRST_DATA = "`churnops data generate` (synthetic) or `churnops data ingest FILE --as-of TIME`"


def home_problem(settings: Settings, needs: tuple[Need, ...]) -> str | None:
    """What the home lacks for these needs, with what to run first (None: nothing lacking).

    Reads the file system only: no directory or database is created.
    """
    home = settings.home
    where = f"the ChurnOps home in use is {home} (CHURNOPS_HOME selects another)"
    if "sources" in needs and not any(settings.sources_dir.glob("*/*.parquet")):
        empty = "does not exist" if not home.exists() else "holds no customer data"
        return f"{where} and it {empty}: run {FIRST_DATA} first, then `churnops features apply`"
    local_registry = settings.feast_registry_url is None
    if "feast" in needs and local_registry and not settings.layout.feast_registry.exists():
        return f"{where} and its Feast repo was never applied: run `churnops features apply` first"
    if "mlflow" in needs and settings.mlflow_tracking_uri is None and not settings.layout.mlflow_db.exists():
        empty = "does not exist" if not home.exists() else "holds no models"
        empty += ", so there is no Production version"
        return (
            f"{where} and it {empty}: run {FIRST_DATA}, `churnops features apply` and "
            "`churnops train` first (`churnops registry migrate` alone creates empty registry tables)"
        )
    return None


def check_home(command: str, *, json_output: bool = False) -> None:
    """Exit 2 with the reason when ``command`` (e.g. "features online") cannot run in this home."""
    needs = NEEDS.get(command)
    if not needs:
        return
    from churnops.commands.common import fail, load_settings

    settings = load_settings(json_output=json_output)
    problem = home_problem(settings, needs)
    if problem:
        raise fail(problem, json_output=json_output)
