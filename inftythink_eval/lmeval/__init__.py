"""The lm-evaluation-harness adapter: the ``inftythink`` model (``model``), its validated ``model_args``
(``config``), per-run sidecars (``sidecar``), the start-up hook that registers it (``_startup``) and the
``inftythink eval`` glue (``cli``).

Does not know: any mode's rules, backends' internals, scoring.
"""
