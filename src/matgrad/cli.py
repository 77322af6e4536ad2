"""The ``matgrad`` command line: ``matgrad explain EXPR``.

Examples::

    matgrad explain "C = A * B"
    matgrad explain "C = A @ B" --shape A=2x3 --shape B=3x4
    matgrad explain "L = linalg.det(A @ B.T)" --shape A=4x3 --shape B=4x3
    matgrad explain "T = A @ B; L = T.sum()" --json
    matgrad explain "C = einsum('ij,jk->ik', A, B)" --svg graph.svg

Errors are one line on stderr and exit with status 2 (``--debug`` adds the traceback).
Warnings raised while the report is built (NumPy's division by zero, invalid values and
overflow; matgrad's gradient warnings) are listed in the report, never printed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["main"]

EXIT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_ERROR)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="matgrad",
        description="matgrad: autodiff for matrix expressions with tensor-level rules.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    ex = sub.add_parser(
        "explain",
        help="show how autodiff differentiates a matrix expression",
        description=(
            "Evaluate EXPR on random inputs and show: the inputs and outputs, the recorded "
            "graph (as PyTorch shows it), the derivatives.yaml rule of each node, the Jacobians "
            "and their structure (row-major vec), and a per-element comparison. EXPR is one or "
            "more assignments separated by ';', e.g. \"C = A @ B\" or "
            '"T = A * B; L = T.sum()"; free names are the inputs.'
        ),
    )
    ex.add_argument("expr", metavar="EXPR", help='the expression, e.g. "C = A * B"')
    ex.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=RxC",
        help="shape of an input (default 3x3; sizes in ASCII digits, at most 6 axes and "
        "100000 elements); repeat for several inputs, e.g. "
        "--shape A=4x3 --shape B=3 (vector) --shape X=2x3x4",
    )
    ex.add_argument("--seed", type=int, default=0, help="random seed of the inputs (default 0)")
    ex.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float64",
        help="dtype of the inputs (default float64)",
    )
    ex.add_argument("--json", action="store_true", help="print the report as JSON")
    ex.add_argument("--svg", metavar="FILE", help="draw the graph to FILE as SVG (Graphviz)")
    ex.add_argument("--dot", metavar="FILE", help="write the graph to FILE as Graphviz DOT")
    ex.add_argument(
        "--plot",
        metavar="FILE.png",
        help="save Jacobian heatmaps to FILE (needs matplotlib: matgrad[plot])",
    )
    ex.add_argument(
        "--no-compare", action="store_true", help="skip section 5 (the per-element comparison)"
    )
    ex.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return parser


def _fail(message: str, debug: bool, exc: BaseException | None = None) -> int:
    if debug and exc is not None:
        traceback.print_exception(exc)
    sys.stderr.write(f"matgrad explain: error: {' '.join(message.split())}\n")
    return EXIT_ERROR


def _explain(args: argparse.Namespace) -> int:
    from . import viz
    from .explain import ExplainError, explain

    # refuse missing tools before doing any work
    if args.svg and shutil.which("dot") is None:
        return _fail(
            f"--svg needs Graphviz's `dot` program, which was not found: "
            f"{viz.INSTALL_HINT}; --dot FILE writes the DOT text without it",
            args.debug,
        )
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _fail(
                "--plot needs matplotlib, which is not installed: pip install "
                "'matgrad[plot]' (or pip install matplotlib)",
                args.debug,
            )
    try:
        report = explain(
            args.expr,
            shapes=args.shape,
            seed=args.seed,
            dtype=args.dtype,
            compare=not args.no_compare,
        )
    except ExplainError as exc:
        return _fail(str(exc), args.debug, exc)
    except Exception as exc:  # noqa: BLE001 - any failure is one line unless --debug
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            args.debug,
            exc,
        )
    try:
        if args.dot:
            Path(args.dot).write_text(report.to_dot())
        if args.svg:
            Path(args.svg).write_text(report.to_svg())
        if args.plot:
            report.plot(args.plot)
    except (OSError, RuntimeError, ExplainError) as exc:
        return _fail(str(exc), args.debug, exc)
    sys.stdout.write(report.to_json() + "\n" if args.json else str(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``matgrad`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status (0 on success, 2 on any error, reported as one line on stderr)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return _explain(args)
    except BrokenPipeError:  # e.g. `matgrad explain ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
