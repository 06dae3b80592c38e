"""Start-up hook (run from ``inftythink_eval_hook.pth``): plug into lm-eval lazily.

Owns: the import watcher, the lazy ``inftythink`` registration and our
task folder on lm-eval's search path.

lm-eval 0.4.13 has no plugin discovery.  This module installs one tiny
import watcher and returns: it imports nothing heavy and costs well under
5 ms.  When (and only when) a process imports lm-eval's model registry, the
watcher (1) imports ``lm_eval.models`` first, so the built-in models are
registered before ours (an earlier registration would leave the built-in
list empty), then (2) registers ``inftythink`` as a lazy placeholder; when
lm-eval's ``TaskManager`` module loads, (3) it adds our task folder to the
default search path, so ``--tasks inftythink_math500`` needs no
``--include_path``.

Does not know: the model class itself (it is imported by name, on demand).
"""

import sys

_MODEL_TARGET = "inftythink_eval.lmeval.model:InftyThinkLM"


def _register_model(module):
    import lm_eval.models  # noqa: F401  (built-ins first)

    if "inftythink" not in module.model_registry:
        module.model_registry.register("inftythink", target=_MODEL_TARGET)


def tasks_dir():
    """Folder of our task YAMLs: packaged (wheel) or the checkout's ``tasks/`` (editable)."""
    from pathlib import Path

    here = Path(__file__).resolve().parents[1]  # the package folder
    for candidate in (here / "tasks", here.parent / "tasks"):
        if candidate.is_dir():
            return candidate
    return None


def _patch_task_manager(module):
    cls = module.TaskManager
    original = cls.__init__
    if getattr(original, "_inftythink", False):
        return

    def __init__(self, *args, include_path=None, include_defaults=True, **kwargs):
        ours = tasks_dir() if include_defaults else None
        if ours is not None:
            paths = [] if include_path is None else list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
            if not any(str(p).rstrip("/") == str(ours) for p in paths):
                include_path = [str(ours)] + paths
        original(self, *args, include_path=include_path, include_defaults=include_defaults, **kwargs)

    __init__._inftythink = True
    cls.__init__ = __init__


_HOOKS = {"lm_eval.api.registry": _register_model, "lm_eval.tasks.manager": _patch_task_manager}


class _Loader:
    def __init__(self, loader, callback):
        self._loader, self._callback = loader, callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._callback(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _Watcher:
    """A meta-path finder that wraps the loader of the watched lm-eval modules."""

    def find_spec(self, name, path=None, target=None):
        callback = _HOOKS.get(name)
        if callback is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader, callback)
                return spec
        return None

    def invalidate_caches(self):
        pass


def install():
    if not any(isinstance(f, _Watcher) for f in sys.meta_path):
        sys.meta_path.insert(0, _Watcher())
    for name, callback in _HOOKS.items():  # lm-eval already imported (e.g. hook installed late)
        if name in sys.modules:
            callback(sys.modules[name])


install()
