"""One error tree: whatever crashlog raises on purpose, ``except crashlog.CrashlogError`` catches."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import crashlog
from crashlog import errors


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of the crashlog package, by qualified name."""
    found = {}
    for module_info in pkgutil.walk_packages(crashlog.__path__, "crashlog."):
        if module_info.name.endswith(".__main__"):
            continue  # a script: importing it runs the command line
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == module.__name__):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_of_the_package_is_a_crashlog_error() -> None:
    classes = exception_classes()
    assert "crashlog.errors.StaleCheckpoint" in classes  # the walk reaches the declarations
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, crashlog.CrashlogError))
    assert outside == []


def test_every_exception_class_is_declared_in_errors() -> None:
    assert {name.rsplit(".", 1)[0] for name in exception_classes()} == {"crashlog.errors"}


def test_the_old_import_paths_still_name_the_same_classes() -> None:
    from crashlog.database import ConnectFailed
    from crashlog.projections.checkpoints import StaleCheckpoint
    from crashlog.roles import RolesError
    from crashlog.spool import SpoolError, SpoolFull

    assert ConnectFailed is errors.ConnectFailed is crashlog.ConnectFailed
    assert SpoolError is errors.SpoolError is crashlog.SpoolError
    assert SpoolFull is errors.SpoolFull is crashlog.SpoolFull
    assert RolesError is errors.RolesError
    assert StaleCheckpoint is errors.StaleCheckpoint


def test_a_stale_checkpoint_names_its_projection() -> None:
    error = errors.StaleCheckpoint("rounds", "moved")
    assert isinstance(error, crashlog.CrashlogError)
    assert (error.name, str(error)) == ("rounds", "moved")
