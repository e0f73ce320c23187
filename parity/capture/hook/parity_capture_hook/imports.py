"""Import machinery: run a patch right after a module is imported, and serve stub modules.

A stub module (``--stub MODULE``) imports cleanly and answers any attribute with a dummy class, so code the
training path never runs (ReVISE's vllm generator) can still be imported."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable
from typing import Any

from parity_capture_hook import state

_after_import: dict[str, list[Callable[[types.ModuleType], None]]] = {}
_stubs: set[str] = set()


def after_import(module_name: str, patch: Callable[[types.ModuleType], None]) -> None:
    """Run `patch(module)` once `module_name` is imported (now, if it already is)."""
    if module_name in sys.modules:
        patch(sys.modules[module_name])
        return
    _after_import.setdefault(module_name, []).append(patch)


def is_stubbed(module_name: str) -> bool:
    return any(module_name == stub or module_name.startswith(stub + ".") for stub in _stubs)


class _DummyMeta(type):
    """Attribute access on a dummy class returns another dummy class."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return dummy_class(f"{cls.__qualname__}.{name}", cls.__module__)

    def __or__(cls, other: Any) -> Any:
        return cls

    __ror__ = __or__

    def __getitem__(cls, item: Any) -> Any:
        return cls


class _DummyBase(metaclass=_DummyMeta):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return dummy_class(f"{type(self).__qualname__}.{name}", type(self).__module__)()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return args[0] if len(args) == 1 and callable(args[0]) and not kwargs else self

    def __iter__(self):
        return iter(())


def dummy_class(qualname: str, module: str) -> type:
    """A class standing for an attribute of a stubbed module (callable, subclassable, subscriptable)."""
    return _DummyMeta(
        qualname.rsplit(".", 1)[-1], (_DummyBase,), {"__qualname__": qualname, "__module__": module}
    )


class StubModule(types.ModuleType):
    """A module whose every attribute is a dummy class."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = dummy_class(f"{self.__name__}.{name}", self.__name__)
        setattr(self, name, value)
        return value


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        state.record("stub-import", module=module.__name__)


class _PatchingLoader(importlib.abc.Loader):
    """Wraps a real loader: executes the module, then the patches registered for it."""

    def __init__(self, loader: Any, module_name: str) -> None:
        self._loader = loader
        self._module_name = module_name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        for patch in _after_import.pop(self._module_name, []):
            patch(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _CaptureFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if is_stubbed(fullname):
            return importlib.machinery.ModuleSpec(fullname, _StubLoader(), is_package=True)
        if fullname not in _after_import:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader, fullname)
                return spec
        return None


def install_finder(stubs: list[str]) -> None:
    """Put the capture finder first on sys.meta_path and register the stubbed module names."""
    _stubs.update(stubs)
    sys.meta_path.insert(0, _CaptureFinder())


def add_stub(module_name: str) -> None:
    """Serve `module_name` as a stub from now on (used for trackers that are not installed)."""
    _stubs.add(module_name)
