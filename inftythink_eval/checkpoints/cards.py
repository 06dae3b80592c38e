"""The model zoo: one YAML card per checkpoint under ``zoo/``, and ``zoo:<name>`` resolution.

Owns: reading and validating cards, resolving ``pretrained=zoo:<name>`` to a
loadable path and the card's default evaluation arguments (mode, template),
which the user's explicit ``model_args`` override.

Card keys: ``name`` (= file stem), ``description``, ``source`` (one of
``fetch``/``path``/``hub_id``), ``base_model``, ``trained_by``, optional
``training`` (recipe, config, data, eta, hardware), ``eval`` (``mode``,
``template``, ``model_args``) and ``scores`` (``reported`` with their source,
``measured`` or ``measured_file``), and ``vanilla_twin`` (the card of the model trained the same way in
the vanilla format: the leaderboard's ΔACC compares against it when the model has no vanilla run itself).

Does not know: backends, lm-eval, training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

PREFIX = "zoo:"


def zoo_dir() -> Path:
    """The card folder: packaged (wheel) or the checkout's ``zoo/`` (editable)."""
    here = Path(__file__).resolve().parents[1]  # the package folder
    for candidate in (here / "_zoo", here.parent / "zoo"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no zoo folder found beside {here}; reinstall inftythink-eval")


@dataclass(frozen=True)
class ZooCard:
    name: str
    source: dict
    eval_mode: str
    eval_args: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    path: Optional[Path] = None

    def resolve_path(self) -> str:
        """A path or hub id that backends can load."""
        if self.source.get("fetch") == "smollm2":
            from inftythink_eval.checkpoints.fetch import smollm2_folder

            return str(smollm2_folder())
        if "path" in self.source:
            local = Path(self.source["path"])
            return str(local if local.is_absolute() else zoo_dir() / local)
        if "hub_id" in self.source:
            return str(self.source["hub_id"])
        raise ValueError(f"zoo card {self.name!r} has no source.fetch, source.path or source.hub_id")


REQUIRED = ("name", "description", "source", "base_model", "trained_by", "eval", "scores")
KNOWN = REQUIRED + ("training", "vanilla_twin")
SOURCES = ("fetch", "path", "hub_id")


def load_card(path: Path) -> ZooCard:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"zoo card {path} must be a YAML mapping with keys {', '.join(REQUIRED)}")
    missing = [k for k in REQUIRED if k not in data]
    unknown = sorted(set(data) - set(KNOWN))
    if missing or unknown:
        raise ValueError(f"zoo card {path}: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}; "
                         f"a card has {', '.join(REQUIRED)} and optionally training, vanilla_twin")
    if data["name"] != path.stem:
        raise ValueError(f"zoo card {path}: name {data['name']!r} must equal the file name {path.stem!r}")
    if not any(k in (data["source"] or {}) for k in SOURCES):
        raise ValueError(f"zoo card {path}: source needs one of {', '.join(SOURCES)}")
    return ZooCard(name=data["name"], source=data["source"], eval_mode=data["eval"].get("mode", "vanilla"),
                   eval_args=dict(data["eval"].get("model_args") or {}), raw=data, path=path)


def summary(card: ZooCard) -> str:
    """One line for ``inftythink zoo list``."""
    where = card.source.get("hub_id") or card.source.get("path") or card.source.get("fetch")
    return f"{card.name:<28} {card.eval_mode:<11} {where}"


def cards() -> dict[str, ZooCard]:
    return {card.name: card for card in (load_card(p) for p in sorted(zoo_dir().glob("*.yaml")))}


def vanilla_twins() -> dict[str, str]:
    """{model: its vanilla twin} for every card that names one (each twin a card itself)."""
    known = cards()
    twins = {name: str(card.raw["vanilla_twin"]) for name, card in known.items() if card.raw.get("vanilla_twin")}
    for name, twin in twins.items():
        if twin not in known:
            raise ValueError(f"zoo card {name!r}: vanilla_twin {twin!r} is not a zoo card (known: {', '.join(sorted(known))})")
    return twins


def get_card(name: str) -> ZooCard:
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    known = cards()
    if name not in known:
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(sorted(known))} (see `inftythink zoo list`)")
    return known[name]


def resolve(pretrained: str) -> tuple[str, dict[str, Any]]:
    """(loadable path, default model_args) for ``zoo:<name>``; other strings pass through unchanged."""
    if not pretrained.startswith(PREFIX):
        return pretrained, {}
    card = get_card(pretrained)
    return card.resolve_path(), {"mode": card.eval_mode, **card.eval_args}
