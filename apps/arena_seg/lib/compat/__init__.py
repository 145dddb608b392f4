"""Every change the app makes to MONAI Label's own code, in one place, for the one release it was tested with.

Stock MONAI Label 0.8.5 answers some requests wrongly or unsafely (see the README's security table); the app
fixes that by replacing stock endpoint functions and middleware (the modules of this package) and by subclassing
its datastores, which relies on private members. :data:`CONTRACT` names each stock member touched, with the
parameters the app calls it with; :func:`check_monailabel` verifies the installed release against it at start, and
``tests/apps/test_monailabel_compat.py`` checks each member, so a monailabel upgrade fails loudly with a message
instead of silently losing a check.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger(__name__)

TESTED_VERSION = "0.8.5"
_OVERRIDE = "ARENA_SEG_ALLOW_UNTESTED_MONAILABEL"

#: stock member → parameters the app relies on (None: an attribute or class whose presence is enough).
#: "replaced": the app swaps it for its own (lib/compat/*); "extended": the app's datastores override or call it.
CONTRACT: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "monailabel.endpoints.train.run_model": ("replaced", ("model", "params", "run_sync", "enqueue")),
    "monailabel.endpoints.train.run": ("replaced", ("params", "run_sync")),
    "monailabel.endpoints.batch_infer.run": ("replaced", ("model", "images", "params", "run_sync")),
    "monailabel.endpoints.scoring.run_method": ("replaced", ("method", "params", "run_sync")),
    "monailabel.endpoints.session.create_session": ("replaced", ("background_tasks", "uncompress", "expiry",
                                                                 "files")),
    "monailabel.endpoints.datastore.download_dataset": ("replaced", ("limit_cases",)),
    "monailabel.endpoints.infer.run_inference": ("extended", ("background_tasks", "model", "image", "session_id",
                                                              "params", "file", "label", "output")),
    "monailabel.endpoints.infer.tempfile": ("replaced", None),
    "monailabel.endpoints.datastore.tempfile": ("replaced", None),
    "monailabel.endpoints.session.tempfile": ("replaced", None),
    "monailabel.endpoints.model.tempfile": ("replaced", None),
    "monailabel.endpoints.wsi_infer.tempfile": ("replaced", None),
    "monailabel.app.app": ("extended", None),  # its middleware stack is rebuilt, its routes run in threads
    "monailabel.datastore.local.LocalDatastore._to_id": ("extended", ("self", "file")),
    "monailabel.datastore.local.LocalDatastore._filename": ("extended", ("self", "id", "ext")),
    "monailabel.datastore.local.LocalDatastore._list_files": ("extended", ("self", "path", "patterns")),
    "monailabel.datastore.local.LocalDatastore._update_datastore_file": ("extended", ("self", "lock")),
    "monailabel.datastore.local.LocalDatastore.get_image_uri": ("extended", ("self", "image_id")),
    "monailabel.datastore.local.LocalDatastore.get_label_uri": ("extended", ("self", "label_id", "label_tag")),
    "monailabel.datastore.local.LocalDatastore.remove_label": ("extended", ("self", "label_id", "label_tag")),
    "monailabel.datastore.local.LocalDatastore.remove_image": ("extended", ("self", "image_id")),
    "monailabel.datastore.local.LocalDatastore.update_image_info": ("extended", ("self", "image_id", "info")),
    "monailabel.datastore.local.LocalDatastore.update_label_info": ("extended", ("self", "label_id", "label_tag",
                                                                                  "info")),
    "monailabel.datastore.local.LocalDatastore.get_label_info": ("extended", ("self", "label_id", "label_tag")),
    "monailabel.datastore.local.DataModel": ("extended", None),
    "monailabel.datastore.local.ImageLabelModel": ("extended", None),
    "monailabel.datastore.dicom.DICOMWebDatastore.__init__": ("extended", ("self", "client", "search_filter",
                                                                           "cache_path", "fetch_by_frame",
                                                                           "convert_to_nifti")),
    "monailabel.utils.sessions.Sessions.add_session": ("extended", ("self", "data_file", "expiry", "uncompress",
                                                                    "session_id")),
}
#: instance attributes of a LocalDatastore the app reads or sets (checked on a real instance by the tests)
DATASTORE_ATTRIBUTES = ("_datastore", "_datastore_path", "_lock_file", "_datastore_config_path",
                        "_ignore_event_config", "_config_ts")


def resolve(name: str) -> Any:
    """The object a dotted ``module.attr[.attr]`` name refers to (AttributeError / ImportError when gone)."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def contract_problems() -> list[str]:
    """What in :data:`CONTRACT` the installed monailabel no longer provides as expected (empty when all holds)."""
    problems = []
    for name, (_, params) in CONTRACT.items():
        try:
            obj = resolve(name)
        except (ImportError, AttributeError):
            problems.append(f"{name} is gone")
            continue
        if params is not None:
            found = tuple(inspect.signature(getattr(obj, "__wrapped__", obj)).parameters)
            if found[: len(params)] != params:
                problems.append(f"{name} takes {found}, expected {params}")
    return problems


def check_monailabel() -> None:
    """Refuse to start on a monailabel release the app was not tested with, or whose patched members changed."""
    import monailabel

    version = getattr(monailabel, "__version__", "?")
    problems = contract_problems()
    if version != TESTED_VERSION and not os.environ.get(_OVERRIDE):
        problems.insert(0, f"monailabel {version} is installed; arena-seg's app was tested with {TESTED_VERSION}")
    if problems:
        raise RuntimeError("arena-seg cannot patch this monailabel safely: " + "; ".join(problems) +
                           f". Install monailabel=={TESTED_VERSION} (requirements.txt), or set {_OVERRIDE}=1 to try "
                           "anyway once the members above are checked.")


def install(*, check_train: Callable[[str, dict[str, Any]], None], check_batch: Callable[[str, dict[str, Any]], None],
            max_upload_mb: float, cors_origins: Iterable[str], dicomweb: bool) -> None:
    """Apply every patch to the running server (the server process only: it alone has endpoints)."""
    from lib.compat.endpoints import install_endpoints
    from lib.compat.firewall import install_firewall
    from lib.compat.guards import install_batch_checks, install_scoring_checks, install_train_checks

    check_monailabel()
    install_train_checks(check_train)
    install_batch_checks(check_batch)
    install_scoring_checks()
    install_firewall(max_upload_mb, cors_origins, dicomweb=dicomweb)
    install_endpoints(int(max_upload_mb * 2**20))
