"""The ``fxflops`` command: ``count`` one model, tabulate the OpenCLIP ``zoo``, list the ``rules``.

This module only parses arguments and turns errors into exit codes and messages; models are built
by :mod:`fxflops.specs`, counted by :func:`fxflops.count`, and printed by :mod:`fxflops.output`.

Exit codes: 0 counted; 1 ``--strict`` and some node had no rule; 2 bad usage, or a model that
cannot be built or traced. An error is one ``fxflops: error: ...`` line and one ``hint: ...`` line
on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from fxflops import __version__

EXIT_OK = 0
EXIT_UNCOUNTED = 1
EXIT_ERROR = 2

FORMATS = ("table", "json", "csv", "markdown")
GROUPINGS = ("module", "op", "node", "category")

EXAMPLES = """\
examples:
  fxflops count open_clip:ViT-B-16                     total, module tree, top ops
  fxflops count open_clip:ViT-B-16 --format json       every node, exact integers
  fxflops count open_clip:ViT-B-16 --method encode_text
  fxflops count torchvision:resnet18 --by op --format markdown
  fxflops count timm:convnext_tiny --depth 1
  fxflops count mypackage.models:build --input 1x3x224x224 --strict
  fxflops count path/to/model.py:make --input 1x77:long
  fxflops count hf:gpt2 --input 1xL:long                  a formula in L
  fxflops count hf:llama --config num_hidden_layers=2 --backward --mfu 5000 --accelerator h100-sxm
  fxflops count open_clip:ViT-B-16 --convention full --causal exact
  fxflops zoo open_clip --format csv > model_profile.csv
  fxflops zoo open_clip ViT-B-32 RN50
  fxflops zoo torchvision --format csv
  fxflops zoo timm 'convnext*'
  fxflops rules attention

exit codes: 0 counted; 1 --strict and some node had no rule;
            2 bad usage, or a model that cannot be built or traced
"""

SPEC_HELP = """\
the model to count: open_clip:NAME, torchvision:NAME, timm:NAME, hf:MODEL_TYPE (built on the meta
device, no weights, default inputs from the model's config), package.module:callable or
path/to/file.py:callable (the callable returns a model or a (model, inputs) pair)"""


class UsageError(Exception):
    """Bad command-line usage (argparse's complaints, re-routed to the one-line error format)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block and exits; keep to one line and a hint instead.
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _depth(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid depth {text!r}: expected a whole number >= 0 or 'all'")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a whole number >= 1")
    return value


def _positive_number(text: str) -> float:
    from fxflops.utilization import positive_finite

    try:
        return positive_finite(float(text), "the value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive, finite number") from None


def _torch_version() -> str:
    # Read from metadata: `fxflops --version` should answer without importing torch.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "not installed"


def build_parser() -> argparse.ArgumentParser:
    """The ``fxflops`` argument parser (exposed for docs and shell completion)."""
    parser = _Parser(
        prog="fxflops",
        description="Exact, explained FLOP counts for PyTorch models (1 multiply-accumulate = 2 FLOPs).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version",
                        version=f"fxflops {__version__} (torch {_torch_version()})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    count = commands.add_parser(
        "count", help="count the FLOPs of one model", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Count the FLOPs of one model call without running it "
                    "(shapes propagate on the meta device).")
    count.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    count.add_argument("--input", "-i", action="append", default=[], metavar="[NAME=]SHAPE[:DTYPE]",
                       help="one input tensor, e.g. 1x3x224x224 or 1x77:long (dtypes: float, half, bf16, "
                            "double, long, int, bool, ...); repeat once per positional input; NAME= passes "
                            "it by keyword; replaces the SPEC's default inputs")
    count.add_argument("--method", default="forward", metavar="NAME",
                       help="the method to count (default: forward), e.g. encode_image")
    count.add_argument("--by", choices=GROUPINGS, default=None,
                       help="group by module, op, node or category (table default: module tree, then top "
                            "ops; csv/markdown default: module)")
    count.add_argument("--depth", type=_depth, default=2, metavar="N",
                       help="module tree depth, or 'all' (default: 2)")
    count.add_argument("--top", type=_positive, default=None, metavar="N",
                       help="show at most N rows of op/node groupings (table default: 10 top ops)")
    count.add_argument("--format", "-f", choices=FORMATS, default="table",
                       help="table (default, for people), json (versioned schema, exact integers), csv, "
                            "markdown")
    count.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                       help="override a field of an hf:MODEL_TYPE default config, e.g. num_hidden_layers=2")
    count.add_argument("--convention", default="default", metavar="NAME",
                       help="which op categories count: default (matmul-class work, as FlopCounterMode) "
                            "or full (also norms, activations, softmax, elementwise, ...); see docs/conventions.md")
    count.add_argument("--causal", choices=("dense", "exact"), default="dense",
                       help="count causal attention dense (default, as FlopCounterMode) or only the kept scores")
    count.add_argument("--trace", choices=("auto", "symbolic", "run", "export"), default="auto",
                       help="torch.fx, running on meta tensors what it cannot follow (auto); torch.fx only; "
                            "running the model on meta tensors only; or torch.export only")
    count.add_argument("--backward", action="store_true",
                       help="also count the backward pass (training FLOPs); inputs do not require grad "
                            "unless --input-grad")
    count.add_argument("--input-grad", action="store_true",
                       help="floating-point inputs require grad (with --backward: count their gradients too)")
    count.add_argument("--mfu", type=_positive_number, default=None, metavar="THROUGHPUT",
                       help="print model FLOPs utilization at THROUGHPUT samples (or tokens, with "
                            "--per-call) per second; needs --accelerator")
    count.add_argument("--accelerator", default=None, metavar="NAME|FLOPS",
                       help="peak for --mfu: a name (a100, h100-sxm, mi300x, tpu-v5p, ...) or FLOP/s")
    count.add_argument("--per-call", type=_positive, default=None, metavar="N",
                       help="samples or tokens one counted call covers, for --mfu (default: the batch size)")
    count.add_argument("--roofline", default=None, metavar="ACCELERATOR",
                       help="add bytes moved, FLOPs/byte, roofline time and bound per module on ACCELERATOR "
                            "(a100, h100, h200, b200, mi300x, tpu-v5e, ...)")
    count.add_argument("--dtype", default=None, metavar="DTYPE",
                       help="count the model and its floating inputs in DTYPE (bf16, fp16, fp32, ...): bytes and "
                            "the roofline's peaks follow it")
    count.add_argument("--html", default=None, metavar="PATH",
                       help="also write the report as one self-contained HTML page (a zoomable icicle of FLOPs "
                            "by module, op and category tables)")
    count.add_argument("--formulas", action="store_true",
                       help="print Kaplan, Chinchilla, PaLM/torchtitan and Megatron's estimates next to the exact "
                            "count, with the difference by term (Hugging Face language models)")
    count.add_argument("--generate", default=None, metavar="P+N",
                       help="count generate(): a prefill of P prompt tokens, then N new tokens with a KV cache "
                            "(decoder-only language models), e.g. --generate 128+32")
    count.add_argument("--strict", action="store_true",
                       help="exit with status 1 if some node had no FLOP rule (listing them)")
    count.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    count.set_defaults(handler=_count)

    zoo = commands.add_parser(
        "zoo", help="FLOP and parameter tables of a model family (OpenCLIP's model_profile.csv)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Regenerate OpenCLIP's model profile table offline: towers counted separately, "
                    "gflops the whole model's forward, batch 1, 2 decimals. Models that cannot be "
                    "built offline or traced are reported on stderr and skipped. A progress bar is "
                    "drawn on stderr when it is a terminal.",
        epilog="examples:\n  fxflops zoo open_clip --format csv > model_profile.csv\n"
               "  fxflops zoo open_clip ViT-B-16 RN50 --exact\n"
               "  fxflops zoo transformers 'llama*'\n  fxflops zoo diffusers 'UNet*'\n")
    zoo.add_argument("family", choices=("open_clip", "torchvision", "timm", "transformers", "diffusers"),
                     help="the model family: open_clip (OpenCLIP's profile table), torchvision "
                          "(every model builder; detectors on a seeded image), timm (models matching PATTERN), "
                          "transformers (every model type matching PATTERN, from its default config), "
                          "diffusers (every ModelMixin class matching PATTERN, default config, depth 2)")
    zoo.add_argument("names", nargs="*", metavar="NAME",
                     help="models to profile (default: every name open_clip.list_models() knows)")
    zoo.add_argument("--format", "-f", choices=("table", "csv", "json", "markdown"), default="table",
                     help="table (default), csv (OpenCLIP's model_profile.csv columns), json, markdown")
    zoo.add_argument("--exact", action="store_true",
                     help="exact integer FLOPs and params instead of GFLOPs and M params to 2 decimals")
    zoo.add_argument("--jobs", "-j", type=_positive, default=None, metavar="N",
                     help="worker processes (default: one per core for 8 models or more, else 1)")
    zoo.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    zoo.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    zoo.set_defaults(handler=_zoo)

    diff = commands.add_parser(
        "diff", help="compare the FLOPs of two models, or of one model at two configs or inputs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Count two SPECs and print both totals, the difference, and the modules and ops whose "
                    "FLOPs changed. --input and --config apply to both; --input-b and --config-b to B alone "
                    "(and -a to A alone).",
        epilog="examples:\n  fxflops diff hf:gpt2 hf:gpt2 --config-b n_layer=24\n"
               "  fxflops diff torchvision:resnet18 torchvision:resnet34 --format markdown\n"
               "  fxflops diff timm:vit_small_patch16_224 timm:vit_small_patch16_224 --input-b 2x3x224x224\n")
    diff.add_argument("spec_a", metavar="SPEC_A", help=SPEC_HELP)
    diff.add_argument("spec_b", metavar="SPEC_B", help="the second SPEC (may equal SPEC_A)")
    for side in ("", "-a", "-b"):
        who = {"": "both", "-a": "A", "-b": "B"}[side]
        diff.add_argument(f"--input{side}", action="append", default=[], metavar="[NAME=]SHAPE[:DTYPE]",
                          help=f"an input tensor for {who} (as for count)")
        diff.add_argument(f"--config{side}", action="append", default=[], metavar="KEY=VALUE",
                          help=f"a config override for {who} (hf: SPECs)")
    diff.add_argument("--method", default="forward", metavar="NAME", help="the method to count (default: forward)")
    diff.add_argument("--depth", type=_depth, default=2, metavar="N", help="module depth (default: 2)")
    diff.add_argument("--convention", default="default", metavar="NAME", help="default or full (as for count)")
    diff.add_argument("--format", "-f", choices=("table", "markdown"), default="table",
                      help="table (default) or markdown (GitHub tables, for a pull-request comment)")
    diff.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    diff.set_defaults(handler=_diff)

    rules = commands.add_parser(
        "rules", help="list the registered FLOP rules",
        description="List every registered FLOP rule: the target it counts, the rule, its category "
                    "and where it is defined (built-in rules and installed rule packs).",
        epilog="examples:\n  fxflops rules\n  fxflops rules attention\n  fxflops rules --format json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    rules.add_argument("pattern", nargs="?", default=None,
                       help="only rules whose target, rule or category contains PATTERN")
    rules.add_argument("--format", "-f", choices=("table", "json", "csv", "markdown"), default="table")
    rules.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    rules.set_defaults(handler=_rules)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fxflops`` command with ``argv`` (``sys.argv[1:]`` by default); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        return _fail(str(e), None)
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    try:
        with _torch_import_warnings_held():
            return int(args.handler(args))
    except KeyboardInterrupt:
        print("fxflops: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # exit() in a model file or builder: not fxflops' own exit
        return _fail(f"the model's code called exit({e.code!r}) while fxflops was building or counting it",
                     "remove the exit() from that code path (guard a script's main code with "
                     "if __name__ == '__main__':)")
    except Exception as e:
        if getattr(args, "debug", False):
            traceback.print_exception(e, file=sys.stderr)
        message, hint = _describe_error(e)
        return _fail(message, hint)


@contextlib.contextmanager
def _torch_import_warnings_held() -> Iterator[None]:
    """Hold back torch's import-time warnings wherever a command first imports it: a fresh
    install without NumPy gets ``UserWarning: Failed to initialize NumPy`` on the first screen, and
    counting never uses NumPy. torch is not imported up front: a typo in a SPEC fails at once."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Failed to initialize NumPy.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch(\..*)?")
        yield


@contextlib.contextmanager
def _quiet(debug: bool) -> Iterator[None]:
    """Keep torch's chatter out of the terminal while counting, unless ``--debug``.

    torch.export and symbolic shapes log warnings and print whole graphs when a fallback capture
    fails; the CLI reports the failure itself, in one line. What is printed at the Python level
    meanwhile is dropped; ``--debug`` lets it all through.
    """
    if debug:
        yield
        return
    previous = logging.root.manager.disable
    # torch's log handlers hold their own stream, so redirecting is not enough: mute at the source.
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def _fail(message: str, hint: str | None, code: int = EXIT_ERROR) -> int:
    print(f"fxflops: error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return code


def _describe_error(error: BaseException) -> tuple[str, str | None]:
    """One line saying what went wrong and one saying what to do, from any error."""
    from fxflops.errors import FxFlopsError
    from fxflops.specs import SpecError, one_line

    if isinstance(error, SpecError):
        return str(error), error.hint
    if isinstance(error, FxFlopsError):
        # fxflops' own messages: a first line, indented node/location lines, a "hint:" line.
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        hint = next((line.removeprefix("hint:").strip() for line in lines if line.startswith("hint:")), None)
        where = next((line for line in lines[1:] if line.startswith("in ")), None)
        first = lines[0] if lines else type(error).__name__
        return (f"{first} ({where})" if where else first), hint
    return (f"unexpected {one_line(error)}",
            "run with --debug for the traceback; if it points into fxflops, please report it")


# -- count ----------------------------------------------------------------------------------------


def _parse_generate(text: str) -> tuple[int, int]:
    from fxflops.specs import SpecError

    prompt, plus, new = text.partition("+")
    if not plus or not prompt.strip().isdigit() or not new.strip().isdigit() or int(prompt) < 1 or int(new) < 1:
        raise SpecError(f"malformed --generate {text!r}", "give prompt tokens + new tokens, e.g. --generate 128+32")
    return int(prompt), int(new)


def _count_generation(model: Any, prompt: int, new: int, args: argparse.Namespace) -> int:
    import json

    import torch

    from fxflops.generation import count_generation

    ids = torch.empty((1, prompt), dtype=torch.long, device="meta")
    with _quiet(args.debug):
        report = count_generation(model, ids, new, convention=args.convention)
    line = report.roofline(args.chip) if args.chip is not None else None
    if args.format == "json":
        data: dict[str, Any] = {"spec": args.spec, "prompt_tokens": prompt, "new_tokens": new,
                                "prefill": report.prefill.total, "steps": report.step_costs(), "total": report.total}
        if line is not None:
            data["roofline"] = {"accelerator": args.chip.name, "prefill_seconds": line.prefill.total_seconds,
                                "prefill_bound": line.prefill.bound, "step_seconds":
                                [step.total_seconds for step in line.steps], "total_seconds": line.total_seconds}
        print(json.dumps(data))
    else:
        print(f"{args.spec} ({type(model).__name__})")
        print(report.summary())
        if line is not None:
            print(line.summary())
    return EXIT_OK


def _requiring_grad(value: Any) -> Any:
    """``value`` as an input that requires grad, when it is a floating-point tensor."""
    import torch

    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.detach().requires_grad_(True)
    return value


def _count(args: argparse.Namespace) -> int:
    from fxflops.specs import SpecError, build, dynamic_of, format_inputs, parse_config, parse_input, parse_spec

    # Parse everything before importing torch and building: a typo should not wait for either.
    spec = parse_spec(args.spec)
    inputs = [parse_input(text) for text in args.input]
    config = parse_config(args.config)
    if args.mfu is not None and args.accelerator is None:
        raise SpecError("--mfu needs the accelerator's peak", "add --accelerator NAME (e.g. a100) or FLOP/s")
    if args.accelerator is not None:
        args.accelerator_peak = _accelerator_peak(args.accelerator)
    args.chip = _roofline_accelerator(args.roofline) if args.roofline else None
    args.torch_dtype = _parse_dtype(args.dtype) if args.dtype else None

    from fxflops.api import count, uncounted_message
    from fxflops.convention import CONVENTIONS
    from fxflops.output import count_json, count_markdown, count_table, grouping_rows, to_csv, uncounted_note

    if args.convention not in CONVENTIONS:
        raise SpecError(f"unknown convention {args.convention!r}", f"use one of {', '.join(sorted(CONVENTIONS))}")
    generate = _parse_generate(args.generate) if args.generate else None
    _load_rule_packs_loudly()
    built = build(spec, inputs, args.method, config=config)
    if args.torch_dtype is not None:
        _cast(built, args.torch_dtype)
    if generate is not None:
        return _count_generation(built.model, *generate, args)
    if args.input_grad:
        built.args = tuple(_requiring_grad(value) for value in built.args)
        built.kwargs = {key: _requiring_grad(value) for key, value in built.kwargs.items()}
    with _quiet(args.debug):
        report = count(built.model, built.args, kwargs=built.kwargs, method=built.method,
                       convention=args.convention, causal=args.causal, trace=args.trace,
                       backward=args.backward, dynamic=dynamic_of(inputs) or None)
    described = built.describe_inputs()
    for item, spec_input in zip([d for d in described if d.get("name") is None],
                                [i for i in inputs if i.name is None], strict=False):
        if spec_input.symbols and "shape" in item:  # show "1xL", not the example size traced at
            item["shape"] = [spec_input.symbols.get(i, d) for i, d in enumerate(item["shape"])]

    if args.format == "table":
        types = {name: type(module).__name__ for name, module in built.model.named_modules()}
        out = count_table(report, spec=spec.text, inputs=format_inputs(described), by=args.by,
                          depth=args.depth, top=args.top, module_types=types)
    elif args.format == "json":
        out = count_json(report, spec=spec.text, method=built.method, inputs=described)
    elif args.format == "csv":
        headers, rows = grouping_rows(report, args.by or "module", args.depth)
        out = to_csv(headers, rows[: args.top] if args.top else rows)
    else:
        out = count_markdown(report, args.by or "module", args.depth, args.top)
    if args.mfu is not None:
        out = _with_mfu(out, report, built, args)
    if args.chip is not None:
        out = _with_roofline(out, report, args)
    if args.formulas:
        out = _with_formulas(out, report, built.model)
    if args.html:
        try:
            report.to_html(args.html, title=spec.text)
        except OSError as e:
            raise SpecError(f"--html {args.html}: cannot write it ({e.strerror or e})",
                            "give a path in a folder that exists and is writable") from None
    sys.stdout.write(out)

    if report.uncounted:
        if args.strict:
            lines = uncounted_message(report.uncounted).splitlines()
            print(f"fxflops: error: --strict: {lines[0]}", file=sys.stderr)
            print("\n".join(lines[1:]), file=sys.stderr)
            return EXIT_UNCOUNTED
        if args.format != "table":  # the table already ends with this warning
            print(uncounted_note(report), file=sys.stderr)
    return EXIT_OK


def _load_rule_packs_loudly() -> None:
    """Load installed rule packs before counting, so that a pack that fails to load is said on
    stderr (the count itself runs with warnings muted)."""
    import warnings

    from fxflops.plugins import load_rule_packs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_rule_packs()
    for warning in caught:
        print(f"fxflops: warning: {warning.message}", file=sys.stderr)


def _with_formulas(out: str, report: Any, model: Any) -> str:
    from fxflops.formulas import compare_formulas
    from fxflops.specs import SpecError

    config = getattr(model, "config", None)
    if config is None:
        raise SpecError("--formulas needs a Hugging Face model (its config holds the sizes the formulas read)",
                        "use an hf: SPEC, or call fxflops.compare_formulas(report, config) with a config")
    try:
        comparison = compare_formulas(report, config)
    except ValueError as e:
        raise SpecError(f"--formulas: {e}", "count one sequence of token ids, e.g. --input 1x1024:long") from None
    return out + "\n" + comparison.table()


def _roofline_accelerator(name: str) -> Any:
    from fxflops.roofline import ACCELERATORS, accelerator
    from fxflops.specs import SpecError

    try:
        return accelerator(name)
    except ValueError:
        raise SpecError(f"unknown accelerator {name!r} for --roofline",
                        f"use one of {', '.join(sorted(ACCELERATORS))} (h100 is h100-sxm)") from None


def _parse_dtype(text: str) -> Any:
    import torch

    from fxflops.specs import DTYPES, SpecError

    name = DTYPES.get(text.strip().lower())
    if name is None or not getattr(torch, name).is_floating_point:
        raise SpecError(f"--dtype {text!r} is not a floating-point dtype", "use bf16, fp16, fp32 or fp64")
    return getattr(torch, name)


def _cast(built: Any, dtype: Any) -> None:
    """``--dtype``: the model's floating parameters and buffers, and its floating inputs, in ``dtype``."""
    import torch

    built.model = built.model.to(dtype)

    def cast(value: Any) -> Any:
        return value.to(dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    built.args = tuple(cast(value) for value in built.args)
    built.kwargs = {key: cast(value) for key, value in built.kwargs.items()}


def _with_roofline(out: str, report: Any, args: argparse.Namespace) -> str:
    """Append (table, markdown) or add (json) the roofline of ``report`` on ``--roofline``."""
    import json

    from fxflops.output import roofline_table

    line = report.roofline(args.chip)
    if args.format == "json":
        data = json.loads(out)
        data["roofline"] = {"accelerator": args.chip.name, "seconds": line.total_seconds, "bound": line.bound,
                            "compute_seconds": line.compute_seconds, "memory_seconds": line.memory_seconds,
                            "bytes": report.bytes, "bytes_read": report.bytes_read,
                            "bytes_written": report.bytes_written}
        return json.dumps(data, indent=2) + "\n"
    return out + "\n" + roofline_table(report, line, args.depth)


def _accelerator_peak(text: str) -> float:
    """``--accelerator``'s peak FLOP/s, checked before anything is built: a name or a number."""
    from fxflops.specs import SpecError
    from fxflops.utilization import PEAK_FLOPS, peak_flops

    try:
        return peak_flops(float(text))
    except ValueError as e:
        if text.strip().lower() in PEAK_FLOPS:
            return peak_flops(text.strip())
        try:
            float(text)
        except ValueError:
            raise SpecError(f"unknown accelerator {text!r}",
                            f"use a name ({', '.join(sorted(PEAK_FLOPS))}) or a peak in FLOP/s, e.g. 312e12") from None
        raise SpecError(f"--accelerator {text!r}: {e}", "give the dense peak in FLOP/s, e.g. 312e12") from None


def _with_mfu(out: str, report: object, built: object, args: argparse.Namespace) -> str:
    """Append (table) or add (json) model FLOPs utilization at ``--mfu`` throughput."""
    import json

    from fxflops.utilization import mfu, peak_flops

    peak = args.accelerator_peak
    per_call = args.per_call or (built.args[0].shape[0] if built.args and hasattr(built.args[0], "shape") else 1)
    try:
        value = mfu(report, args.mfu, peak, units_per_call=per_call)  # type: ignore[arg-type]
    except ValueError as e:
        from fxflops.specs import SpecError

        raise SpecError(f"--mfu {args.mfu:g}: {e}", f"one counted call covers {per_call} units; set that "
                        "with --per-call N, and check --accelerator's peak") from None
    line = (f"mfu:     {100 * value:.2f}% at {args.mfu:g}/s ({per_call} per counted call) on "
            f"{args.accelerator} ({peak_flops(peak) / 1e12:g} TFLOP/s peak)")
    if args.format == "json":
        data = json.loads(out)
        data["mfu"] = {"value": value, "throughput": args.mfu, "per_call": per_call, "peak_flops": peak_flops(peak),
                       "accelerator": args.accelerator}
        return json.dumps(data, indent=2) + "\n"
    return out + line + "\n"


# -- diff -----------------------------------------------------------------------------------------


def _diff(args: argparse.Namespace) -> int:
    from fxflops.specs import SpecError, build, parse_config, parse_input, parse_spec

    sides = []
    for side in ("a", "b"):
        spec = parse_spec(getattr(args, f"spec_{side}"))
        inputs = [parse_input(text) for text in getattr(args, f"input_{side}") or args.input]
        config = {**parse_config(args.config), **parse_config(getattr(args, f"config_{side}"))}
        sides.append((spec, inputs, config))
    from fxflops.api import count
    from fxflops.convention import CONVENTIONS
    from fxflops.diff import diff_text

    if args.convention not in CONVENTIONS:
        raise SpecError(f"unknown convention {args.convention!r}", f"use one of {', '.join(sorted(CONVENTIONS))}")
    _load_rule_packs_loudly()
    reports, labels = [], []
    for (spec, inputs, config), side in zip(sides, ("a", "b"), strict=True):
        built = build(spec, inputs, args.method, config=config)
        with _quiet(args.debug):
            reports.append(count(built.model, built.args, kwargs=built.kwargs, method=built.method,
                                 convention=args.convention))
        extras = [f"--config {key}={value}" for key, value in config.items()]
        extras += [f"--input {text}" for text in getattr(args, f"input_{side}") or args.input]
        labels.append(" ".join([spec.text, *extras]))
    sys.stdout.write(diff_text(reports[0], reports[1], labels[0], labels[1], depth=args.depth, fmt=args.format))
    return EXIT_OK


# -- zoo ------------------------------------------------------------------------------------------


def _default_jobs(n_models: int) -> int:
    # Worker processes each import torch and open_clip (a few seconds): only worth it for many models.
    if n_models < 8:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)


def _zoo(args: argparse.Namespace) -> int:
    if args.family in ("torchvision", "timm", "transformers", "diffusers"):
        return _zoo_models(args)
    from fxflops.output import zoo_output
    from fxflops.progress import Progress
    from fxflops.specs import SpecError, open_clip_names, parse_spec, unknown_name_error

    try:
        import open_clip  # noqa: F401
    except ImportError:
        raise SpecError("fxflops zoo open_clip needs open_clip_torch, which is not installed",
                        "pip install open_clip_torch") from None
    from fxflops import zoo

    known = open_clip_names()
    names = list(args.names) or list(known)
    for name in names:  # fail fast on typos, before minutes of counting
        if name not in known:
            raise unknown_name_error(parse_spec(f"open_clip:{name}"), known,
                                "import open_clip; print(open_clip.list_models())")
    failures: list[zoo.ZooFailure] = []
    start = time.monotonic()
    with Progress(len(names), enabled=False if args.no_progress else None) as progress:
        progress.start(names[0] if names else "")

        def on_error(failure: zoo.ZooFailure) -> None:
            failures.append(failure)
            progress.write(f"fxflops: skipped {failure}")

        with _quiet(args.debug):
            rows = zoo.open_clip_table(
                names, exact=args.exact, jobs=args.jobs or _default_jobs(len(names)), on_error=on_error,
                on_done=lambda name, done, total: progress.advance(f"last: {name}"))
    elapsed = time.monotonic() - start
    columns = zoo.OPEN_CLIP_EXACT_COLUMNS if args.exact else zoo.OPEN_CLIP_COLUMNS
    sys.stdout.write(zoo_output(rows, columns, args.format, failures=failures, versions=_versions()))
    skipped = f", {len(failures)} skipped" if failures else ""
    print(f"fxflops: {len(rows)} of {len(names)} models profiled{skipped} in {elapsed:.1f} s",
          file=sys.stderr)
    if not rows:
        return _fail("no model could be profiled", "see the reasons above; run with --debug for details")
    return EXIT_OK


ZOO_COLUMNS = ("model", "input", "params", "gflops", "flops", "uncounted", "trace")


def _zoo_models(args: argparse.Namespace) -> int:
    """``fxflops zoo torchvision`` / ``timm`` / ``transformers`` / ``diffusers [PATTERN]``: one row per
    model (transformers: every model type of its config mapping, built from its default config on
    meta; diffusers: every ModelMixin class, :mod:`fxflops.zoo_diffusers`)."""
    import fnmatch

    from fxflops.api import count
    from fxflops.output import zoo_output
    from fxflops.progress import Progress
    from fxflops.specs import build, format_inputs, parse_spec

    if args.family == "torchvision":
        import torchvision

        known = list(torchvision.models.list_models())  # every builder: detectors count on a seeded image
    elif args.family == "transformers":
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        known = sorted(CONFIG_MAPPING.keys())
    elif args.family == "diffusers":
        from fxflops.zoo_diffusers import list_classes

        known = list_classes()
    else:
        import timm

        known = list(timm.list_models())
    patterns = list(args.names) or ["*"]
    names = [n for n in known if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not names:
        close = difflib.get_close_matches(patterns[0].strip("*?[]"), known, n=3, cutoff=0.6)
        lister = {"torchvision": "torchvision.models.list_models()", "timm": "timm.list_models()",
                  "transformers": "sorted(transformers.CONFIG_MAPPING)",
                  "diffusers": "list_classes()"}[args.family]
        module = "from fxflops.zoo_diffusers import list_classes" if args.family == "diffusers" else \
            f"import {args.family}"
        listing = f"python -c '{module}; print(*{lister}, sep=chr(10))'"
        return _fail(f"no {args.family} model matches {' '.join(patterns)}",
                     (f"did you mean {' or '.join(close)}? " if close else "") + f"list them with: {listing}")
    rows: list[dict[str, object]] = []
    failures: list[str] = []
    start = time.monotonic()
    with Progress(len(names), enabled=False if args.no_progress else None) as progress:
        progress.start(names[0])
        for name in names:
            try:
                prefix = "hf" if args.family == "transformers" else args.family
                built = build(parse_spec(f"{prefix}:{name}"))
                with _quiet(args.debug):
                    report = count(built.model, built.args, kwargs=built.kwargs)
            except Exception as e:  # one model failing must not stop the zoo
                failures.append(name)
                progress.write(f"fxflops: skipped {name}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
            else:
                rows.append({"model": name, "input": format_inputs(built.describe_inputs()),
                             "params": report.params, "gflops": round(report.total / 1e9, 2), "flops": report.total,
                             "uncounted": len(report.uncounted), "trace": report.trace})
            progress.advance(f"last: {name}")
    sys.stdout.write(zoo_output(rows, ZOO_COLUMNS, args.format, failures=[], versions=_versions()))
    skipped = f", {len(failures)} skipped" if failures else ""
    print(f"fxflops: {len(rows)} of {len(names)} models counted{skipped} in {time.monotonic() - start:.1f} s",
          file=sys.stderr)
    return EXIT_OK if rows else EXIT_ERROR


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"fxflops": __version__, "torch": _torch_version()}
    try:
        versions["open_clip_torch"] = version("open_clip_torch")
    except PackageNotFoundError:
        pass
    return versions


# -- rules ----------------------------------------------------------------------------------------


def _rules(args: argparse.Namespace) -> int:
    import fxflops.rules  # noqa: F401  (built-in rules register on import)
    from fxflops.output import rule_rows, rules_output
    from fxflops.plugins import load_rule_packs
    from fxflops.registry import DEFAULT_REGISTRY

    load_rule_packs()
    rows = rule_rows(DEFAULT_REGISTRY, args.pattern)
    if not rows:
        return _fail(f"no rule matches {args.pattern!r}",
                     "try a shorter pattern, e.g. 'linear', or list every rule with 'fxflops rules'")
    sys.stdout.write(rules_output(rows, args.format))
    return EXIT_OK

