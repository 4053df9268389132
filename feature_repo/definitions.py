"""The ChurnOps Feast repo: `feast apply` here registers what `churnops features apply` does.

Source paths are absolute, under CHURNOPS_HOME (default: the project's ./.churnops).
"""

import os
from pathlib import Path

from churnops.features.definitions import build_definitions

_home = Path(os.environ.get("CHURNOPS_HOME", Path(__file__).resolve().parent.parent / ".churnops"))
_defs = build_definitions(sources_dir=_home.resolve() / "sources")

customer = _defs.customer
profile_source = _defs.sources["profile"]
account_source = _defs.sources["account"]
services_source = _defs.sources["services"]
labels_source = _defs.sources["labels"]
profile = _defs.views["profile"]
account = _defs.views["account"]
services = _defs.views["services"]
churn_v1 = _defs.churn_v1
