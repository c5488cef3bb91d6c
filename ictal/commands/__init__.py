"""Subcommands of `ictal`. Each module has ``register(subparsers)`` that sets ``func`` on its parser."""

from ictal.commands import (
    alarms,
    bench,
    compare,
    config,
    crossval,
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

COMMAND_MODULES = (serve, replay, demo, alarms, train, crossval, evaluate, score, compare, tune, bench, doctor, config,
                   view)
