"""``napari-bsdenoise info``: describe a model file."""

from __future__ import annotations

import json

from ..io.images import check_input_file


def run(args) -> int:
    from ..api import load_model

    model = load_model(check_input_file(args.model, "model"))
    if args.json:
        print(json.dumps(model.config.to_dict(), indent=2))
    else:
        print(model.summary())
    return 0


def add_parser(sub) -> None:
    """Add the ``info`` subcommand to the subparsers ``sub``."""
    i = sub.add_parser("info", help="describe a model file", description="Print a model file's summary.")
    i.add_argument("model", metavar="MODEL")
    i.add_argument("--json", action="store_true", help="print the model's full JSON config instead")
    i.set_defaults(func=run)
