"""Generation backends behind one protocol, one module each; see ``base`` for the contract and the registry.

Owns: the public names of the backend layer.  Every module here whose name does not start with ``_``
is a backend that registers itself (``base.register_backend``) and is found by ``base.discover``;
adding a backend is adding its module.

Does not know: rounds, modes, templates, lm-eval.
"""

from inftythink_eval.backends.base import (Backend, BackendError, BackendSpec, Completion, Request, SamplingParams,
                                           backend_class, backend_names, backend_spec, default_backend, discover,
                                           make_backend, register_backend)

__all__ = ["Backend", "BackendError", "BackendSpec", "Completion", "Request", "SamplingParams", "backend_class",
           "backend_names", "backend_spec", "default_backend", "discover", "make_backend", "register_backend"]
