"""What the ``napari-bsdenoise`` subcommands share: the progress bar, argument types and options,
messages on stderr, output-path checks and the train/compute-then-write drivers."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.images import convert_dtype, read_image, write_image

PROG = "napari-bsdenoise"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

AXES_HELP = ("axes of the image, letters among T, Z, C, Y, X (e.g. ZYX, TCYX, YXC for RGB); default: "
             "from the file's ImageJ/OME metadata, or YX / YXC for 2-D and colour images")
HOT_PIXELS_HELP = ("hot/dead pixels and other isolated outliers (more than 6 noise sigma from their surroundings, "
                    "at most 2x2 pixels): auto (default) and remove repair them before denoising, keep leaves them")
DEVICE_HELP = "cpu, cuda, cuda:1, mps (default: CUDA, then Apple MPS, then CPU)"


class CLIError(InputError):
    """A user error found by the command line itself (missing file, unreadable image ...)."""


# -- progress ----------------------------------------------------------------------------------
class Progress:
    """A progress bar on stderr: tqdm when installed, else a plain text bar (no hard dependency)."""

    def __init__(self, desc: str, *, enabled: bool = True, stream=None):
        self.desc = desc
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._bar = None
        self._opened = False
        self._last = (-1.0, 0.0)  # (fraction, time) of the last plain-text update

    def _open(self) -> None:
        """Start tqdm at the first update (so that an early error prints no empty bar)."""
        self._opened = True
        try:
            from tqdm import tqdm
        except ImportError:
            return
        tty = getattr(self.stream, "isatty", lambda: False)()
        self._bar = tqdm(total=1000, desc=self.desc, file=self.stream, leave=True, dynamic_ncols=True,
                         mininterval=0.1 if tty else 5.0,  # log files get a line every few seconds
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")

    def update(self, fraction: float, info: str = "") -> None:
        if not self.enabled:
            return
        if not self._opened:
            self._open()
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self._bar is not None:
            if info:
                self._bar.set_postfix_str(info, refresh=False)
            self._bar.update(int(fraction * 1000) - self._bar.n)
            return
        now = time.monotonic()
        last_f, last_t = self._last
        tty = getattr(self.stream, "isatty", lambda: False)()
        if tty and (now - last_t > 0.2 or fraction >= 1.0):
            width = 30
            filled = int(round(width * fraction))
            self.stream.write(f"\r{self.desc}: {fraction:4.0%} [{'#' * filled}{'.' * (width - filled)}] {info}\x1b[K")
            self.stream.flush()
            self._last = (fraction, now)
        elif not tty and (fraction - last_f >= 0.1 or (fraction >= 1.0 > last_f)):
            self.stream.write(f"{self.desc}: {fraction:4.0%} {info}\n")
            self.stream.flush()
            self._last = (fraction, now)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and getattr(self.stream, "isatty", lambda: False)() and self._last[0] >= 0:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False


# -- messages ----------------------------------------------------------------------------------
def note(msg: str) -> None:
    """Print ``napari-bsdenoise: <msg>`` on stderr."""
    print(f"{PROG}: {msg}", file=sys.stderr)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# -- argument parsing --------------------------------------------------------------------------
class UsageError(Exception):
    """A command-line usage error, printed as one line by :func:`napari_bsdenoise.cli.main`."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage + exit
        raise UsageError(f"{message} (see '{self.prog} --help')")


def int_arg(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None


def spot_arg(value: str):
    """A blind spot: ``3`` (a square) or ``1x9`` (y x x sides, for noise correlated along one axis)."""
    from ..config import parse_blind_spot
    from ..errors import InputError

    try:
        return parse_blind_spot(value)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def blind_spot_arg(value: str):
    if value.lower() == "auto":
        return "auto"
    return spot_arg(value)


def blind_spot_list(value: str) -> list:
    return [spot_arg(v) for v in value.replace(" ", "").split(",") if v]


def positive_int(value: str) -> int:
    v = int_arg(value)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return v


def positive_float(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return v


def add_output_and_budget(p, what: str, axes_help: str) -> None:
    """``-o/--output MODEL``, ``--axes`` and the ``--steps``/``--seconds`` budget of train and distill."""
    p.add_argument("-o", "--output", metavar="MODEL", required=True,
                   help=f"{what} file to write (.safetensors is appended if missing)")
    p.add_argument("--axes", help=axes_help)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, metavar="N", help="optimisation steps (default 2000)")
    budget.add_argument("--seconds", type=positive_float, metavar="S", help="time budget in seconds")


# -- input and output files --------------------------------------------------------------------
def read_input(path, axes: str | None = None):
    """Read an input image (validated by :func:`napari_bsdenoise.api.check_image`) and print its notes."""
    from ..api import check_image

    img = read_image(path, axes, check=check_image)
    for n in img.notes:
        note(n)
    return img


def same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output(out, *inputs: Path) -> Path:
    """``out`` as a Path if it can be written and is none of ``inputs``, else a :class:`CLIError`."""
    out = Path(out)
    for src in inputs:
        if same_file(out, src):
            raise CLIError(f"refusing to overwrite the input file {src}; choose another output name")
    if out.is_dir():
        raise CLIError(f"{out} is a folder; give an output file name")
    parent = out.parent if str(out.parent) else Path(".")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise CLIError(f"cannot write {out}: {existing} is not a writable folder")
    return out


def model_output_path(out: str) -> Path:
    path = Path(out)
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


# -- drivers -----------------------------------------------------------------------------------
def run_trainer(trainer, out: Path, label: str, quiet: bool) -> tuple[Path, bool]:
    """Drive a trainer/distiller with a progress bar; Ctrl-C keeps and saves the best model so far."""
    bar = Progress(label, enabled=not quiet)
    interrupted = False
    try:
        for event in trainer:
            info = f"step {event.step}" + (f"/{event.total}" if event.total else "")
            if event.best_val_loss is not None and np.isfinite(event.best_val_loss):
                info += f", best val {event.best_val_loss:.4g}"
            bar.update(event.fraction, info)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    path = trainer.model.save(out)
    if interrupted:
        note(f"interrupted: saved the best model so far to {path}")
    return path, interrupted


def training_summary(model) -> str:
    t = model.config.training
    return (f"{t.get('steps', '?')} steps in {t.get('seconds', 0):.0f} s, best validation loss "
            f"{t.get('best_val_loss', float('nan')):.5g} at step {t.get('best_step', '?')}")


def compute_and_write(compute, bar: Progress, img, out: Path, dtype: str):
    """Run ``compute()`` under ``bar``, convert to ``dtype`` and write ``out``; None after Ctrl-C
    (nothing is written)."""
    try:
        result = compute()
    except KeyboardInterrupt:
        bar.close()  # before the note
        note("interrupted: nothing was written")
        return None
    finally:
        bar.close()
    if dtype == "input":
        result = convert_dtype(result, img.data.dtype)
    write_image(out, result, img, img.axes)
    return result
