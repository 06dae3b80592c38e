"""Hatch build hook: ship the start-up hook ``inftythink_eval.pth`` in both normal and editable wheels.

The .pth line registers the ``inftythink`` lm-eval model and our task folder
lazily (see ``inftythink_eval/lmeval/_startup.py``), so ``lm_eval --model inftythink``
works with no extra flag after ``pip install .``.
"""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        pth = {"inftythink_eval/_hook.pth": "inftythink_eval_hook.pth"}
        build_data.setdefault("force_include", {}).update(pth)
        build_data.setdefault("force_include_editable", {}).update(pth)
