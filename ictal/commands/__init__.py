"""Subcommands of `ictal`. Each module has ``register(subparsers)`` that sets ``func`` on its parser."""

from ictal.commands import (
    alarms,
    bench,
    compare,
    config,
    demo,
    doctor,
    evaluate,
    replay,
    score,
    serve,
    train,
    tune,
    view,
)

COMMAND_MODULES = (serve, replay, demo, alarms, train, evaluate, score, compare, tune, bench, doctor, config, view)
