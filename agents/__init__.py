"""Search agents for codegym environments, and the registry the CLI and benchmark use.

Built in: ``greedy``, ``best-of-n``, ``beam``, ``mcts``. A user's agent is found by its
registered name (:func:`register`), by the entry-point group ``codegym.agents``, or by an import
path ``package.module:ClassName`` or file path ``path/to/agent.py:ClassName``, and is treated
exactly as a built-in:

* the one contract is ``cls(policy, config, prm)`` and ``solve(env, problem_id, budget) -> Solution``;
* its options are the fields of the dataclass named by its class attribute ``Config`` (a ``seed``
  field receives the benchmark's seed; without one, several seeds would repeat one run);
* the constructor validates the config and must not call the policy (the benchmark constructs
  every agent with ``policy=None`` to check options before a model loads);
* the building blocks (:class:`EpisodeRunner`, :func:`proposals_for`, :class:`BudgetedBackend`,
  :class:`Solution`, :class:`Tree`) are exported here; ``examples/custom_agent.py`` uses them.

A benchmark names agents by *label*: :class:`AgentSpec` ties a label to an agent and its options,
so one run can compare variants (``mcts-c0.5`` and ``mcts-c8``, say).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from .base import (
    Agent,
    Budget,
    BudgetedBackend,
    BudgetExhausted,
    EpisodeRunner,
    Outcome,
    Solution,
    Tree,
    TreeNode,
    next_kinds,
    proposals_for,
    solution_from_tree,
)
from .beam import BeamAgent, BeamConfig
from .best_of_n import BestOfNAgent, BestOfNConfig
from .greedy import GreedyAgent, GreedyConfig
from .mcts import MCTSAgent, MCTSConfig

REGISTRY: dict[str, type] = {"greedy": GreedyAgent, "best-of-n": BestOfNAgent, "beam": BeamAgent, "mcts": MCTSAgent}


def register(name: str, cls: type) -> None:
    """Make ``cls`` available by ``name`` (its options: the dataclass ``cls.Config``)."""
    REGISTRY[name] = cls


def agent_class(name: str) -> type:
    """Find an agent class by registered name, entry point, or ``module:Class`` path."""
    if name in REGISTRY:
        return REGISTRY[name]
    for entry in entry_points(group="codegym.agents"):
        if entry.name == name:
            return entry.load()
    if ":" in name:
        module, _, attribute = name.partition(":")
        try:
            return getattr(_import(module), attribute)
        except (ImportError, AttributeError, OSError) as error:
            raise ValueError("cannot load agent %r: %s" % (name, error)) from None
    raise ValueError("unknown agent %r; known: %s (or module:Class)" % (name, ", ".join(sorted(REGISTRY))))


def _import(module: str) -> types.ModuleType:
    """A module by import path, or by file path (``path/to/agent.py``)."""
    if not module.endswith(".py"):
        return importlib.import_module(module)
    path = os.path.abspath(module)
    name = "codegym_plugin_" + "".join(c if c.isalnum() else "_" for c in path)
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None or not os.path.exists(path):
            raise ImportError("no agent file %s" % module)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        spec.loader.exec_module(loaded)
    return sys.modules[name]


def config_fields(cls: type) -> dict[str, tuple[Any, Any]]:
    """An agent class's options: name -> (type, default); empty without a ``Config``."""
    config_cls = getattr(cls, "Config", None)
    if config_cls is None:
        return {}
    hints = typing.get_type_hints(config_cls)
    return {f.name: (hints[f.name], f.default if f.default is not dataclasses.MISSING else f.default_factory())
            for f in dataclasses.fields(config_cls)}


def _fits(value: Any, kind: Any) -> bool:
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return value in typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(kind))
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


@dataclass(frozen=True)
class AgentSpec:
    """A labelled agent: ``agent`` (a name, entry point or ``module:Class``) with its options."""

    label: str
    agent: str
    options: dict = field(default_factory=dict)

    def agent_class(self) -> type:
        return agent_class(self.agent)

    def config(self, seed: int | None = None):
        """The agent's config object (None without a Config); raises a one-line ValueError
        naming the label, the field and the allowed fields."""
        cls = self.agent_class()
        fields = config_fields(cls)
        where = "agent %r (%s)" % (self.label, self.agent)
        if not fields:
            if self.options:
                raise ValueError("%s declares no Config, so it takes no options; given: %s"
                                 % (where, ", ".join(sorted(self.options))))
            return None
        for name, value in self.options.items():
            if name not in fields:
                raise ValueError("%s has no field %r; fields: %s" % (where, name, ", ".join(fields)))
            if not _fits(value, fields[name][0]):
                raise ValueError("%s: field %r must be %s, got %r" % (where, name, _type_name(fields[name][0]), value))
        options = dict(self.options)
        if seed is not None and "seed" in fields:
            options["seed"] = seed
        try:
            return cls.Config(**options)
        except (TypeError, ValueError) as error:
            raise ValueError("%s: %s" % (where, error)) from None

    def build(self, policy, prm=None, seed: int | None = None):
        """The agent, built by the one contract ``cls(policy, config, prm)``."""
        cls = self.agent_class()
        try:
            return cls(policy, self.config(seed), prm)
        except (TypeError, ValueError) as error:
            raise ValueError("agent %r (%s): %s" % (self.label, self.agent, error)) from None

    def takes_seed(self) -> bool:
        return "seed" in config_fields(self.agent_class())


def parse_agent_spec(text: str) -> AgentSpec:
    """The inline form ``LABEL=AGENT:field=value,field=value`` (or just ``AGENT``; a
    ``module:Class`` agent takes its options after a second colon). Values are numbers,
    true/false, none, or text: ``mcts-c8=mcts:c=8,expansion=4``."""
    label, eq, rest = text.partition("=")
    if not eq:
        return AgentSpec(text, text)
    agent, _, fields = rest.rpartition(":")
    if "=" not in fields:  # no options: the whole rest names the agent (maybe module:Class)
        agent, fields = rest, ""
    options = {}
    for item in filter(None, fields.split(",")):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError("agent %r: expected field=value, got %r" % (label, item))
        options[name.strip()] = _literal(value.strip())
    if not label or not agent:
        raise ValueError("an inline agent is LABEL=AGENT:field=value,...; got %r" % text)
    return AgentSpec(label, agent, options)


def _literal(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text


def make_agent(name: str, policy, prm=None, **options):
    """An agent by name with its options (``seed`` among them where its Config has one)."""
    seed = options.pop("seed", None)
    return AgentSpec(name, name, options).build(policy, prm, seed)


def describe_agents() -> list[dict]:
    """Every known agent (registered and entry points) with its fields, types and defaults."""
    names = dict(REGISTRY)
    for entry in entry_points(group="codegym.agents"):
        names.setdefault(entry.name, None)
    out = []
    for name in sorted(names):
        try:
            cls = agent_class(name)
        except Exception as error:  # noqa: BLE001 - a broken plug-in is listed, not fatal
            out.append({"agent": name, "error": str(error)})
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        out.append({"agent": name, "doc": doc[0] if doc else "",
                    "fields": [{"name": k, "type": _type_name(t), "default": d} for k, (t, d) in config_fields(cls).items()]})
    return out


__all__ = ["REGISTRY", "Agent", "AgentSpec", "BeamAgent", "BeamConfig", "BestOfNAgent", "BestOfNConfig",
           "Budget", "BudgetExhausted", "BudgetedBackend", "EpisodeRunner", "GreedyAgent", "GreedyConfig", "MCTSAgent",
           "MCTSConfig", "Outcome", "Solution", "Tree", "TreeNode", "agent_class", "config_fields", "describe_agents",
           "make_agent", "next_kinds", "parse_agent_spec", "proposals_for", "register", "solution_from_tree"]
