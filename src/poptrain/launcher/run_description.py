"""Describe a sweep or a PBT population once, as data: which commands to run with which parameters.

    RUN_DESCRIPTION = RunDescription(
        "cartpole_lr",
        experiments=[Experiment("cartpole", [sys.executable, "-m", "poptrain.train", "task=Cartpole"],
                                ParamGrid([("train.params.config.learning_rate", [1e-3, 3e-4])]))],
        experiment_arg_name="experiment", experiment_dir_arg_name="train_dir", param_prefix="",
    )

Commands are argv lists end to end. ``Experiment.cmd`` may be given as a string (split with ``shlex.split``)
or as a list; each parameter becomes ONE argv element ``<param_prefix><name>=<value>`` so values with
spaces, quotes, ``=`` or ``$`` reach the child unchanged. ``generate_experiments`` (the seed's interface)
yields the shlex-joined string; backends use :meth:`RunDescription.plan`, which keeps the argv list.

Naming rule (``customize_experiment_name=True``)::

    <idx:02d>_<base_name>[_<shorthand>_<value>]...      cut to MAX_NAME_LEN (80) characters

- ``idx`` counts the experiment's parameter combinations from 0, so names stay unique inside the
  experiment's folder even after the cut.
- ``shorthand`` of a parameter: split its name on ``.``, ``_`` and ``-``; the first letter of every token
  but the last, then the first 3 letters of the last token, joined by ``.`` (``train.params.config.gamma``
  -> ``t.p.c.gam``); lengthened one letter at a time while it collides with an earlier parameter's.
- ``value`` as text (lists joined by ``-``) with every character outside ``[A-Za-z0-9.+-]`` replaced by
  ``-`` and cut to 16 characters, so the name is a safe single folder name.

With ``customize_experiment_name=False`` the name is ``<idx:02d>_<base_name>``.

Layout: every experiment of one :class:`Experiment` gets the same ``experiment_dir`` =
``<train_dir>/<run_name>/<base_name>[_<experiment_suffix>]`` (passed as ``experiment_dir_arg_name``), and
its own name (passed as ``experiment_arg_name``); poptrain.train then writes to ``<experiment_dir>/<name>/``,
the folder where the launcher also keeps ``log.txt``. Members of one PBT population therefore share one
``train_dir`` (and a workspace relative to it).
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from poptrain.errors import ConfigError

MAX_NAME_LEN = 80
"""Experiment names are cut to this many characters (after the two-digit index prefix is added)."""
MAX_VALUE_CHARS = 16
"""A parameter value contributes at most this many characters to an experiment name."""

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9.+\-]")
_BASE_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")


# ---- parameter generators ---------------------------------------------------------------------------
class ParamGenerator:
    """Yields parameter combinations: one ``{name: value}`` dict per experiment."""

    def generate_params(self, randomize: bool = True) -> Iterator[dict[str, Any]]:
        """Yield every combination; ``randomize`` shuffles their order (reproducibly under ``seed``)."""
        raise NotImplementedError


def _check_combinations(combinations: Iterable[Any], owner: str) -> list[dict[str, Any]]:
    """Each combination as a plain dict; ConfigError naming the first that is not a mapping of valid names."""
    checked: list[dict[str, Any]] = []
    for i, combination in enumerate(combinations):
        if not isinstance(combination, Mapping):
            raise ConfigError(f"{owner} combination #{i} is {combination!r}; valid: a dict name -> value")
        for name in combination:
            _check_param_name(name)
        checked.append(dict(combination))
    return checked


def _check_param_name(name: object) -> str:
    if not isinstance(name, str) or not name or any(c.isspace() or c == "=" for c in name):
        raise ConfigError(
            f"parameter name {name!r} is invalid; valid: a non-empty string without spaces or '='"
        )
    return name


class ParamList(ParamGenerator):
    """An explicit list of combinations, e.g. ``ParamList([{"lr": 1e-3, "gamma": 0.99}, {"lr": 3e-4}])``.

    ``seed`` makes ``generate_params(randomize=True)`` reproducible (None = a fresh order each time).
    """

    def __init__(self, combinations: Iterable[Mapping[str, Any]], seed: int | None = None):
        self.combinations = _check_combinations(combinations, "ParamList")
        self.seed = seed

    def generate_params(self, randomize: bool = True) -> Iterator[dict[str, Any]]:
        order = list(range(len(self.combinations)))
        if randomize:
            random.Random(self.seed).shuffle(order)
        for i in order:
            yield dict(self.combinations[i])


class ParamGrid(ParamGenerator):
    """The cartesian product of ``[(name, values), ...]``.

    Order is deterministic: the FIRST parameter changes slowest, the last fastest (``itertools.product``).
    A name may be a tuple of names whose values vary together (IsaacGymEnvs' grid): every value is then a
    sequence with one entry per name, ``(("pbt.policy_idx", "seed"), ([0, 1], [1, 2]))`` yields
    ``{pbt.policy_idx: 0, seed: 1}`` and ``{pbt.policy_idx: 1, seed: 2}``.
    """

    def __init__(self, grid_tuples: Iterable[tuple[str, Sequence[Any]]], seed: int | None = None):
        self.grid: list[tuple[str | tuple[str, ...], list[Any]]] = []
        seen: set[str] = set()
        for entry in grid_tuples:
            if not (isinstance(entry, tuple | list) and len(entry) == 2):
                raise ConfigError(f"ParamGrid entry {entry!r} is invalid; valid: a (name, [values...]) pair")
            key, values = entry
            names = tuple(key) if isinstance(key, tuple | list) else (key,)
            if not names:
                raise ConfigError(
                    f"ParamGrid entry {entry!r} names no parameter; valid: a name or a tuple of names"
                )
            for name in names:
                _check_param_name(name)
                if name in seen:
                    raise ConfigError(f"ParamGrid parameter {name!r} appears twice; valid: each name once")
                seen.add(name)
            value_list = _as_value_list(values)
            if value_list is None or len(value_list) == 0:
                raise ConfigError(
                    f"ParamGrid values for {key!r} are {values!r}; valid: a non-empty list of values"
                )
            if isinstance(key, tuple | list):
                for value in value_list:
                    row = _as_value_list(value)
                    if row is None or len(row) != len(names):
                        raise ConfigError(
                            f"ParamGrid value {value!r} for {tuple(names)!r}: valid: a sequence of {len(names)} "
                            "values, one per name (they vary together)"
                        )
                self.grid.append((tuple(names), value_list))
            else:
                self.grid.append((names[0], value_list))
        self.seed = seed

    def generate_params(self, randomize: bool = False) -> Iterator[dict[str, Any]]:
        keys = [key for key, _ in self.grid]
        combos = []
        for values in itertools.product(*(v for _, v in self.grid)):
            combo: dict[str, Any] = {}
            for key, value in zip(keys, values, strict=True):
                if isinstance(key, tuple):  # names that vary together take one entry each
                    combo.update(zip(key, _as_value_list(value) or [], strict=True))
                else:
                    combo[key] = value
            combos.append(combo)
        if not self.grid:
            combos = []
        if randomize:
            random.Random(self.seed).shuffle(combos)
        yield from combos


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy"


def _as_value_list(values: Any) -> list[Any] | None:
    """A list of values from a list/tuple/range or a numpy array (its elements stay numpy scalars); else None."""
    if _is_numpy(values) and getattr(values, "ndim", 0) >= 1:
        return list(values)
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence):
        return None
    return list(values)


# ---- values and names -------------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """The text of one parameter value on the command line (Hydra and argparse both read it back).

    Strings are passed verbatim; bools as ``True``/``False``; numbers with ``repr`` (``1e-05``, ``-3``);
    lists/tuples as ``[a,b]`` (Hydra list syntax); None as ``null``. numpy values render as plain numbers:
    scalars as the shortest text that reads back to the same value in their precision (``np.float32(0.1)``
    -> ``0.1``, never ``np.float64(0.1)``, which ``repr`` gives under numpy 2), arrays as lists.
    """
    if isinstance(value, str):
        return value
    if _is_numpy(value):
        if getattr(value, "ndim", 0) >= 1:
            return "[" + ",".join(format_value(v) for v in value) + "]"
        kind = getattr(getattr(value, "dtype", None), "kind", "")
        if kind == "b":
            return "True" if bool(value) else "False"
        if kind in "iu":
            return str(int(value))
        if kind == "f":
            return str(value)  # numpy's own shortest round-trip text for its precision
        return format_value(value.item()) if hasattr(value, "item") else str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def _name_value(value: Any) -> str:
    if isinstance(value, list | tuple) or (_is_numpy(value) and getattr(value, "ndim", 0) >= 1):
        text = "-".join(format_value(v) for v in value)
    else:
        text = format_value(value)
    return _NAME_UNSAFE.sub("-", text)[:MAX_VALUE_CHARS]


def param_shorthand(name: str, taken: Sequence[str] = ()) -> str:
    """Short form of a parameter name for experiment names (see the module doc for the rule)."""
    tokens = [t for t in re.split(r"[._\-]", name) if t] or [name]
    head = [t[0] for t in tokens[:-1]]
    last = tokens[-1]
    length = min(3, len(last))
    shorthand = ".".join([*head, last[:length]])
    while shorthand in taken and length < len(last):
        length += 1
        shorthand = ".".join([*head, last[:length]])
    if shorthand in taken:  # same tokens all the way: disambiguate with a counter
        base, n = shorthand, 2
        while f"{base}{n}" in taken:
            n += 1
        shorthand = f"{base}{n}"
    return shorthand


def _as_argv(cmd: str | Sequence[str], what: str) -> list[str]:
    if isinstance(cmd, str):
        try:
            argv = shlex.split(cmd)
        except ValueError as exc:
            raise ConfigError(f"{what} command {cmd!r} cannot be parsed: {exc}") from None
    elif isinstance(cmd, Sequence) and all(isinstance(a, str) for a in cmd):
        argv = list(cmd)
    else:
        raise ConfigError(f"{what} command {cmd!r} is invalid; valid: a string or a list of strings")
    if not argv:
        raise ConfigError(f"{what} command is empty; valid: a program and its arguments")
    return argv


# ---- experiments ------------------------------------------------------------------------------------
class Experiment:
    """One base command and the parameter combinations to run it with.

    ``param_generator``: a :class:`ParamGenerator` (its ``generate_params()`` default order is used) or any
    iterable of ``{name: value}`` dicts, e.g. ``ParamGrid(...).generate_params(randomize=False)``.
    ``env_vars``: extra environment variables for every run of this experiment.
    """

    def __init__(
        self,
        name: str,
        cmd: str | Sequence[str],
        param_generator: ParamGenerator | Iterable[Mapping[str, Any]] = (),
        env_vars: Mapping[str, str] | None = None,
    ):
        if not isinstance(name, str) or not _BASE_NAME_OK.match(name):
            raise ConfigError(
                f"experiment name {name!r} is invalid; valid: letters, digits, '.', '_', '+', '-' "
                "(a single folder name)"
            )
        self.base_name = name
        self.argv = _as_argv(cmd, f"experiment {name!r}")
        source = (
            param_generator.generate_params()
            if isinstance(param_generator, ParamGenerator)
            else param_generator
        )
        self.params = _check_combinations(source, f"experiment {name!r}")
        if env_vars is not None:
            bad = {
                k: v for k, v in env_vars.items() if not isinstance(k, str) or not isinstance(v, str) or not k
            }
            if bad:
                raise ConfigError(f"experiment {name!r} env_vars {bad!r} are invalid; valid: str -> str")
        self.env_vars: dict[str, str] | None = dict(env_vars) if env_vars is not None else None

    @property
    def cmd(self) -> str:
        """The base command as one shell-quoted string."""
        return shlex.join(self.argv)

    def generate_argv(
        self, experiment_arg_name: str, customize_experiment_name: bool, param_prefix: str
    ) -> Iterator[tuple[list[str], str]]:
        """Yield ``(argv, experiment_name)`` per parameter combination (one run when there are none)."""
        combos = self.params or [{}]
        for idx, params in enumerate(combos):
            argv = list(self.argv)
            name_tokens = [self.base_name]
            taken: list[str] = []
            for pname, value in params.items():
                argv.append(f"{param_prefix}{pname}={format_value(value)}")
                shorthand = param_shorthand(pname, taken)
                taken.append(shorthand)
                name_tokens.append(f"{shorthand}_{_name_value(value)}")
            if customize_experiment_name:
                name = f"{idx:02d}_" + "_".join(name_tokens)
            else:
                name = f"{idx:02d}_{self.base_name}"
            name = name[:MAX_NAME_LEN].rstrip("_.-")
            argv.append(f"{experiment_arg_name}={name}")
            yield argv, name

    def generate_experiments(
        self, experiment_arg_name: str, customize_experiment_name: bool, param_prefix: str
    ) -> Iterator[tuple[str, str]]:
        """The seed's interface: ``(cmd string, experiment_name)`` per combination."""
        for argv, name in self.generate_argv(experiment_arg_name, customize_experiment_name, param_prefix):
            yield shlex.join(argv), name


@dataclass(frozen=True)
class PlannedExperiment:
    """One run as the backends see it."""

    argv: list[str]
    """The full command: base argv, parameters, experiment name, experiment dir."""
    name: str
    """Experiment name (unique within its experiment_dir)."""
    root_dir: str
    """``<run_name>/<base_name>[_<suffix>]``, relative to train_dir."""
    experiment_dir: str
    """``<train_dir>/<root_dir>``: the value passed as ``experiment_dir_arg_name``."""
    env_vars: dict[str, str] | None = None
    """Extra environment variables for this run."""
    run_name: str = ""
    """The RunDescription's run_name."""
    params: dict[str, Any] = field(default_factory=dict)
    """This run's parameter combination."""

    @property
    def cmd(self) -> str:
        """The command as one shell-quoted string."""
        return shlex.join(self.argv)

    @property
    def output_dir(self) -> str:
        """``<experiment_dir>/<name>``: where the child writes and where the launcher keeps log.txt."""
        return os.path.join(self.experiment_dir, self.name)


class RunDescription:
    """A named set of experiments: what ``poptrain-launch --run MODULE`` reads from ``MODULE.RUN_DESCRIPTION``.

    ``param_prefix``: ``"--"`` (argparse: ``--lr=0.1``) or ``""`` (Hydra: ``lr=0.1``).
    ``experiment_suffix`` (set by ``--experiment_suffix``) is appended to every experiment folder.
    """

    def __init__(
        self,
        run_name: str,
        experiments: Sequence[Experiment],
        experiment_arg_name: str = "--experiment",
        experiment_dir_arg_name: str = "--train_dir",
        customize_experiment_name: bool = True,
        param_prefix: str = "--",
    ):
        if not isinstance(run_name, str) or not _BASE_NAME_OK.match(run_name):
            raise ConfigError(f"run_name {run_name!r} is invalid; valid: letters, digits, '.', '_', '+', '-'")
        experiments = list(experiments)
        if not experiments or not all(isinstance(e, Experiment) for e in experiments):
            raise ConfigError(
                f"RunDescription {run_name!r} needs a non-empty list of Experiment, got {experiments!r}"
            )
        names = [e.base_name for e in experiments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(
                f"RunDescription {run_name!r}: experiment names {dupes} repeat; valid: unique names"
            )
        for arg, what in (
            (experiment_arg_name, "experiment_arg_name"),
            (experiment_dir_arg_name, "experiment_dir_arg_name"),
        ):
            if not isinstance(arg, str) or not arg or "=" in arg or any(c.isspace() for c in arg):
                raise ConfigError(
                    f"{what} {arg!r} is invalid; valid: an option name such as '--train_dir' or 'train_dir'"
                )
        self.run_name = run_name
        self.experiments = experiments
        self.experiment_arg_name = experiment_arg_name
        self.experiment_dir_arg_name = experiment_dir_arg_name
        self.customize_experiment_name = customize_experiment_name
        self.param_prefix = param_prefix
        self.experiment_suffix = ""

    def _root_dir(self, experiment: Experiment) -> str:
        folder = experiment.base_name
        if self.experiment_suffix:
            folder = f"{folder}_{self.experiment_suffix}"
        return os.path.join(self.run_name, folder)

    def plan(self, train_dir: str, makedirs: bool = True) -> Iterator[PlannedExperiment]:
        """Yield every run, in order, with its argv kept as a list."""
        if self.experiment_suffix and not _BASE_NAME_OK.match(self.experiment_suffix):
            raise ConfigError(
                f"experiment_suffix {self.experiment_suffix!r} is invalid; valid: letters, digits, '.', '_', '+', '-'"
            )
        for experiment in self.experiments:
            root_dir = self._root_dir(experiment)
            experiment_dir = os.path.join(train_dir, root_dir)
            if makedirs:
                os.makedirs(experiment_dir, exist_ok=True)
            combos = experiment.params or [{}]
            generated = experiment.generate_argv(
                self.experiment_arg_name, self.customize_experiment_name, self.param_prefix
            )
            for (argv, name), params in zip(generated, combos, strict=True):
                argv.append(f"{self.experiment_dir_arg_name}={experiment_dir}")
                yield PlannedExperiment(
                    argv=argv,
                    name=name,
                    root_dir=root_dir,
                    experiment_dir=experiment_dir,
                    env_vars=dict(experiment.env_vars) if experiment.env_vars is not None else None,
                    run_name=self.run_name,
                    params=dict(params),
                )

    def generate_experiments(
        self, train_dir: str, makedirs: bool = True
    ) -> Iterator[tuple[str, str, str, dict[str, str] | None]]:
        """The seed's interface: ``(cmd, experiment_name, root_dir, env_vars)`` per run."""
        for planned in self.plan(train_dir, makedirs=makedirs):
            yield planned.cmd, planned.name, planned.root_dir, planned.env_vars
