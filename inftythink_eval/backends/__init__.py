"""Generation backends behind one protocol; see ``base`` for the contract and registry."""

from inftythink_eval.backends.base import (Backend, BackendError, Completion, Request, SamplingParams, backend_class,
                   backend_names, make_backend, register_backend)

__all__ = ["Backend", "BackendError", "Completion", "Request", "SamplingParams", "backend_class",
           "backend_names", "make_backend", "register_backend"]
