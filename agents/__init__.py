"""Search agents for codegym environments, and the registry the CLI and benchmark use.

Built in: ``greedy``, ``best-of-n``, ``beam``, ``mcts``. A user's agent is found by its
registered name, by the entry-point group ``codegym.agents``, or by an import path
``package.module:ClassName``. An agent class takes ``(policy, config=None, prm=None)`` and has
``solve(env, problem_id, budget) -> Solution``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from .base import Agent, Budget, BudgetedBackend, BudgetExhausted, EpisodeRunner, Solution, Tree, TreeNode
from .beam import BeamAgent, BeamConfig
from .best_of_n import BestOfNAgent, BestOfNConfig
from .greedy import GreedyAgent, GreedyConfig
from .mcts import MCTSAgent, MCTSConfig

REGISTRY: dict[str, type] = {"greedy": GreedyAgent, "best-of-n": BestOfNAgent, "beam": BeamAgent, "mcts": MCTSAgent}
CONFIGS: dict[str, type] = {"greedy": GreedyConfig, "best-of-n": BestOfNConfig, "beam": BeamConfig, "mcts": MCTSConfig}


def register(name: str, cls: type, config_cls: type | None = None) -> None:
    REGISTRY[name] = cls
    if config_cls is not None:
        CONFIGS[name] = config_cls


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
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            raise ValueError("cannot load agent %r: %s" % (name, error)) from None
    raise ValueError("unknown agent %r; known: %s (or module:Class)" % (name, ", ".join(sorted(REGISTRY))))


def make_agent(name: str, policy, prm=None, **options):
    cls = agent_class(name)
    config_cls = CONFIGS.get(name)
    config = config_cls(**options) if config_cls is not None else None
    return cls(policy, config, prm) if config is not None else cls(policy)


__all__ = ["CONFIGS", "REGISTRY", "Agent", "BeamAgent", "BeamConfig", "BestOfNAgent", "BestOfNConfig", "Budget",
           "BudgetExhausted", "BudgetedBackend", "EpisodeRunner", "GreedyAgent", "GreedyConfig", "MCTSAgent",
           "MCTSConfig", "Solution", "Tree", "TreeNode", "agent_class", "make_agent", "register"]
