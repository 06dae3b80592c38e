"""What every task family shares: the declarations and the registry.

Owns: ``Benchmark`` (one benchmark's data entry: hub id, config, split,
offline file, row count, leaderboard group), ``Family`` (a family's row
schema and conversion, its checker, its lm-eval hooks, its benchmarks),
``Group`` (a leaderboard group), ``register_family`` / ``register_group``
(a family module registers itself) with their checks, and the live tables
everything else reads: ``FAMILIES``, ``BENCHMARKS``, ``HOOKS``, ``GROUPS``
(kept in rank order, so a family registered later appears in place).
The leaderboard's groups are declared here: ``paper``, ``appendix`` and the
fallback ``other``.

Does not know: any one family's prompt or checker, file formats (``scoring.datasets``),
lm-eval, the leaderboard's layout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Optional

RowConverter = Callable[[dict, int], dict]  # (raw row, index) -> row in the family schema; KeyError/ValueError when bad


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: where its rows come from and where its results show.  Its task is ``inftythink_<name>``,
    whose YAML sets ``dataset_kwargs: {benchmark: <name>}``."""

    name: str                  # benchmark name (lower case): math500, aime24, ...
    title: str                 # display name in the leaderboard's group headings: MATH500, GPQA-diamond, ...
    group: str                 # leaderboard group (a registered ``Group``): paper, appendix, ...
    hub_path: str              # hub dataset id, e.g. HuggingFaceH4/MATH-500
    hub_name: Optional[str]    # hub config (None: the default one)
    hub_split: str             # hub split
    local_file: str            # offline file, relative to INFTYTHINK_DATA_DIR: .jsonl, .jsonl.gz or .zip
    rows: int                  # expected row count (a different count is an error)
    family: str = ""           # the family that registered it (set by ``register_family``)
    gated: bool = False        # the hub copy needs accepted terms and HF_TOKEN
    member: Optional[str] = None       # for a .zip: the file inside it (.csv or .jsonl), read in memory
    password: Optional[bytes] = None   # for a .zip: its password
    keep: Optional[Callable[[dict], bool]] = None  # offline file: which raw rows form the split (None: all)

    @property
    def task(self) -> str:
        return f"inftythink_{self.name}"


@dataclass(frozen=True)
class Family:
    """A task family: one row schema, one checker, one set of lm-eval hooks, several benchmarks."""

    name: str                        # math, choice, code, ...
    schema: tuple                    # the keys of every row ``to_row`` returns (what the hooks read)
    to_row: RowConverter             # raw hub/offline row -> row in ``schema``
    checker: Callable                # the answer checker its judging filter calls
    hooks: dict                      # hook name -> function; task YAMLs name them ``!function utils.<name>``
    benchmarks: tuple                # its ``Benchmark`` entries, in table order
    template: str                    # its base task YAML in tasks/_base/, included by every leaf of the family
    unsafe_code: bool                # its tasks run model-written code (lm-eval --confirm_run_unsafe_code)
    rank: int                        # order in tables (lower first)
    module: str                      # the module that registered it


@dataclass(frozen=True)
class Group:
    """A leaderboard group: a heading over the tables of its benchmarks' tasks."""

    name: str
    title: str                       # heading; the members' titles follow in parentheses when it has any
    rank: int                        # order on the page (lower first)


FAMILIES: dict[str, Family] = {}
BENCHMARKS: dict[str, Benchmark] = {}
HOOKS: dict[str, Callable] = {}
GROUPS: dict[str, Group] = {}
OTHER = "other"  # the group of every task that is no registered benchmark's
RESERVED_HOOKS = ("load_benchmark",)  # the data hook every family shares (``scoring.hooks``)


def _reorder(table: dict, key: Callable) -> None:
    """Sort a live table in place (the same dict object stays shared by every importer)."""
    items = sorted(table.items(), key=lambda item: key(item[1]))
    table.clear()
    table.update(items)


def register_group(name: str, title: str, rank: int) -> Group:
    """Declare a leaderboard group (a family module may declare its own before naming it in a benchmark)."""
    if name in GROUPS:
        raise ValueError(f"leaderboard group {name!r} is declared twice ({GROUPS[name].title!r} and {title!r})")
    GROUPS[name] = Group(name, title, rank)
    _reorder(GROUPS, lambda g: (g.name == OTHER, g.rank))
    return GROUPS[name]


def register_family(name: str, *, schema: Iterable[str], to_row: RowConverter, checker: Callable,
                    hooks: Iterable[Callable], benchmarks: Iterable[Benchmark], template: Optional[str] = None,
                    unsafe_code: bool = False, rank: int = 100) -> Family:
    """Register a family from its module: its hooks under their function names, its benchmarks under their names.

    Raises ``ValueError`` naming the clash when a family, hook or benchmark name is taken, or a benchmark
    names a group nobody declared.
    """
    if name in FAMILIES:
        raise ValueError(f"task family {name!r} is registered twice ({FAMILIES[name].module} and {to_row.__module__})")
    hooks = {fn.__name__: fn for fn in hooks}
    benches = tuple(replace(b, family=name) for b in benchmarks)
    _check_names(name, hooks, benches)
    family = Family(name, tuple(schema), to_row, checker, hooks, benches, template or f"{name}_template",
                    unsafe_code, rank, to_row.__module__)
    FAMILIES[name] = family
    HOOKS.update(hooks)
    BENCHMARKS.update((b.name, b) for b in benches)
    _reorder(FAMILIES, lambda f: f.rank)
    _reorder(HOOKS, lambda fn: _family_of_hook(fn).rank)
    _reorder(BENCHMARKS, lambda b: (FAMILIES[b.family].rank, FAMILIES[b.family].benchmarks.index(b)))
    return family


def _family_of_hook(fn: Callable) -> Family:
    return next(f for f in FAMILIES.values() if f.hooks.get(fn.__name__) is fn)


def _check_names(family: str, hooks: dict, benches: tuple) -> None:
    for hook in hooks:
        if hook in HOOKS or hook in RESERVED_HOOKS:
            owner = next((f.name for f in FAMILIES.values() if hook in f.hooks), "scoring.hooks")
            raise ValueError(f"family {family!r}: hook {hook!r} is already taken by {owner}; "
                             f"expected names of its own, e.g. {family}_prompt, judge_{family}, {family}_results")
    for bench in benches:
        if bench.name in BENCHMARKS:
            raise ValueError(f"family {family!r}: benchmark {bench.name!r} is already registered "
                             f"by family {BENCHMARKS[bench.name].family!r}")
        if bench.group not in GROUPS:
            raise ValueError(f"family {family!r}: benchmark {bench.name!r} names leaderboard group {bench.group!r}; "
                             f"expected one of {', '.join(GROUPS)} (or declare it with register_group first)")
    if len({b.name for b in benches}) != len(benches):
        raise ValueError(f"family {family!r} lists a benchmark twice: {[b.name for b in benches]}")


def group_order() -> list[str]:
    """Leaderboard groups in page order (``other`` last)."""
    return list(GROUPS)


def members(group: str) -> list[Benchmark]:
    """The registered benchmarks of one leaderboard group, in table order."""
    return [b for b in BENCHMARKS.values() if b.group == group]


# The leaderboard's groups, as in the InftyThink paper's tables (main results; appendix).
register_group("paper", "Paper benchmarks", rank=0)
register_group("appendix", "Appendix benchmarks", rank=1)
register_group(OTHER, "Other tasks (the synthetic depth tasks: CPU-scale models trained by this project)", rank=1000)
