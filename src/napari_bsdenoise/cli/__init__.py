"""The ``napari-bsdenoise`` command: train, denoise, inspect models and diagnose noise from a shell.

Examples::

    napari-bsdenoise noise cells.tif
    napari-bsdenoise train cells.tif -o cells.safetensors --seconds 300
    napari-bsdenoise denoise cells.safetensors cells.tif -o cells_denoised.tif
    napari-bsdenoise info cells.safetensors
    napari-bsdenoise export cells.safetensors -o cells.zip --image cells.tif

Reads TIFF (axes from ImageJ/OME metadata when unambiguous), PNG and JPEG;
writes TIFF (float32 by default, pixel size copied from the input) or 8/16-bit
PNG.  User errors print one line, ``napari-bsdenoise: error: <message>``, and
exit with code 2.  Input files are only ever read.

One module per subcommand (``auto``, ``train``, ``distill``, ``denoise``, ``info``, ``export``,
``refine``, ``noise``), each with ``add_parser(sub)`` and ``run(args)``; what they share is in
:mod:`.common`, whole-file image reading and writing in :mod:`napari_bsdenoise.io.images`.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import BSDenoiseError
from ..io.images import ImageFile, convert_dtype, read_image, write_image
from . import auto, denoise, distill, export, info, noise, refine, train
from .common import EXIT_INTERRUPTED, EXIT_USER_ERROR, PROG, CLIError, Parser, Progress, UsageError, one_line

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USER_ERROR",
    "PROG",
    "CLIError",
    "ImageFile",
    "Progress",
    "build_parser",
    "convert_dtype",
    "main",
    "read_image",
    "write_image",
]


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    p = Parser(prog=PROG, description="Self-supervised blind-spot denoising (AT-BSN) of microscopy and "
               "camera images: train on the noisy data itself, no clean reference needed.",
               epilog=f"Run '{PROG} COMMAND --help' for the options of a command.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    auto.add_parser(sub)  # the one-button path first
    train.add_parser(sub)
    distill.add_parser(sub)
    denoise.add_parser(sub)
    info.add_parser(sub)
    export.add_parser(sub)  # a BioImage Model Zoo package (docs/export.md)
    refine.add_parser(sub)  # experimental diffusion refinement (docs/bsgd.md)
    noise.add_parser(sub)
    return p


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    try:
        return args.func(args)
    except BSDenoiseError as exc:
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print(f"{PROG}: error: out of memory; try a smaller --tile-size or a smaller image", file=sys.stderr)
        return 1
    except FloatingPointError as exc:  # training diverged
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return 1
