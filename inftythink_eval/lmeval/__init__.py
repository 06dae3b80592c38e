"""The lm-evaluation-harness adapter.

Owns: the ``inftythink`` model (``model``), its validated ``model_args``
(``config``), per-run sidecars (``sidecar``), the start-up hook that
registers it (``_startup``), the ``inftythink eval`` glue (``cli``) and the
help and README tables rendered from the modes' and backends' declarations
(``describe``).

Does not know: any mode's rules, backends' internals, scoring.
"""
