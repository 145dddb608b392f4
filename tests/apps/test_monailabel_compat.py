"""The contract between the app and the stock MONAI Label code it patches (lib/compat): one check per member, so
that a monailabel release that renames or reshapes one fails here, by name, and the server refuses to start."""

from __future__ import annotations

import inspect

import pytest
from app_support import APP_DIR  # noqa: F401 - puts the app's `lib` on sys.path
from lib import compat


@pytest.mark.parametrize("name", sorted(compat.CONTRACT))
def test_each_patched_member_is_there_with_the_parameters_the_app_uses(name):
    kind, params = compat.CONTRACT[name]
    obj = compat.resolve(name)
    assert kind in ("replaced", "extended")
    if params is not None:
        found = tuple(inspect.signature(getattr(obj, "__wrapped__", obj)).parameters)
        assert found[: len(params)] == params


def test_a_datastore_has_the_private_attributes_the_app_relies_on(tmp_path):
    from monailabel.datastore.local import LocalDatastore

    store = LocalDatastore(str(tmp_path), auto_reload=False)
    missing = [a for a in compat.DATASTORE_ATTRIBUTES if not hasattr(store, a)]
    assert not missing
    assert hasattr(store._datastore, "objects") and callable(store._datastore.label_path)


def test_an_untested_release_or_a_changed_member_is_refused_with_a_message(monkeypatch):
    import monailabel
    import monailabel.endpoints.train as train

    compat.check_monailabel()  # the pinned release passes
    monkeypatch.setattr(monailabel, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=r"monailabel 9\.9\.9 is installed.*tested with 0\.8\.5"):
        compat.check_monailabel()
    monkeypatch.setenv("ARENA_SEG_ALLOW_UNTESTED_MONAILABEL", "1")
    compat.check_monailabel()  # the override lets a user try a newer release knowingly

    def run_model(name, options=None):  # what a renamed parameter would look like
        return None

    monkeypatch.setattr(train, "run_model", run_model)
    assert compat.contract_problems() == [
        "monailabel.endpoints.train.run_model takes ('name', 'options'), expected "
        "('model', 'params', 'run_sync', 'enqueue')"]
    with pytest.raises(RuntimeError, match="run_model"):
        compat.check_monailabel()
