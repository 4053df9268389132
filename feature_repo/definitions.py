"""The ChurnOps Feast repo: `feast apply` here registers what `churnops features apply` does.

``feature_store.yaml`` beside this file keeps its state in the project's ``.churnops/`` (Feast
reads the YAML before it imports this file, and cannot default a variable), so the sources
are read from there too. A different ``CHURNOPS_HOME`` would split the registry from the
sources: that is refused with the fix (``churnops features apply`` builds the configuration
for any home).
"""

import os
from pathlib import Path

from churnops.contracts.home_layout import HomeLayout
from churnops.features.definitions import build_definitions

_repo_home = (Path(__file__).resolve().parent.parent / ".churnops").resolve()
_asked = os.environ.get("CHURNOPS_HOME")
if _asked and Path(_asked).expanduser().resolve() != _repo_home:
    raise SystemExit(
        f"CHURNOPS_HOME={_asked} but feature_store.yaml keeps Feast's registry in {_repo_home}: "
        "run `churnops features apply` (it uses CHURNOPS_HOME for both), or unset CHURNOPS_HOME here"
    )
_defs = build_definitions(sources_dir=HomeLayout(_repo_home).sources)

customer = _defs.customer
profile_source = _defs.sources["profile"]
account_source = _defs.sources["account"]
services_source = _defs.sources["services"]
labels_source = _defs.sources["labels"]
profile = _defs.views["profile"]
account = _defs.views["account"]
services = _defs.views["services"]
churn_v1 = _defs.churn_v1
