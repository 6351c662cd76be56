"""Errors for bad user input, and the CLI's error boundary that prints every expected failure as one line.

Expected failures (bad files, paths, configs, checkpoints) end as ``mono-metric: error: ...`` and exit
code 1; ``--debug`` (anywhere on the command line) re-raises them with the traceback. Anything else
is an internal error: a short report with the command to rerun with ``--debug``, exit code 2.
"""
from __future__ import annotations

import errno
import pickle
import shlex
import sys
from pathlib import Path


class InputError(ValueError):
    """Bad input from the user (file, intrinsics, image, config); the message names the input and the fix."""


def read_yaml_mapping(path, what: str, expected: str) -> dict:
    """Read a YAML file holding a mapping, with :class:`InputError` naming ``what`` on any problem.

    Args:
        path: the file.
        what: how to call it in messages, e.g. 'intrinsics file'.
        expected: what the mapping should hold, for the message when it is not a mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as err:
        raise InputError(f"{what} {path} is not a text file (byte {err.start} is not UTF-8); pass a YAML file") from err
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise InputError(f"{what} {path} is not valid YAML{at} ({getattr(err, 'problem', None) or err}); "
                         "fix the file") from err
    except OSError as err:
        raise InputError(f"{what} {path} cannot be read ({err.strerror}); check the file") from err
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} must hold a mapping of {expected}")
    return data


def _one_line(text: str) -> str:
    """The message on one line, without torch's advice to unpickle untrusted files."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    lines = [ln for ln in lines if "weights_only" not in ln and "WeightsUnpickler" not in ln]
    return " ".join(lines)[:600] or "no details"


def expected_message(err: BaseException) -> str | None:
    """The one-line message for an expected failure, or None for an internal error."""
    import yaml

    if isinstance(err, InputError):
        return _one_line(str(err))
    if isinstance(err, OSError):
        name = err.filename if err.filename is not None else "a file"
        reason = err.strerror or _one_line(str(err))
        fix = {errno.ENOSPC: "free some disk space", errno.EACCES: "check the permissions",
               errno.EPERM: "check the permissions", errno.EROFS: "choose a writable folder",
               errno.ENOENT: "check the path", errno.EISDIR: "give a file, not a folder",
               errno.ENOTDIR: "a part of the path is a file, not a folder"}.get(err.errno, "check the path")
        return f"{name}: {reason}; {fix}"
    if isinstance(err, (pickle.UnpicklingError, EOFError)):
        return ("a checkpoint cannot be read: it is truncated, corrupt or holds pickled objects (only weights-only "
                "PyTorch files are loaded); use an intact checkpoint")
    if isinstance(err, yaml.YAMLError):
        return f"a YAML file is invalid ({_one_line(str(err))}); fix it"
    if isinstance(err, MemoryError):
        return "out of memory; use smaller inputs (--max-width, --max-frames) or a smaller model"
    return None


def split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug`` (accepted before or after the subcommand) and whether it was there."""
    if "--" in argv:
        head, tail = argv[:argv.index("--")], argv[argv.index("--"):]
    else:
        head, tail = argv, []
    return [a for a in head if a != "--debug"] + tail, "--debug" in head


def run_guarded(func, args, argv: list[str], debug: bool, prog: str = "mono-metric") -> int:
    """Call ``func(args)`` inside the error boundary described in the module docstring."""
    try:
        return func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; results written so far are kept (a run resumes with --resume)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as err:  # noqa: BLE001 - the boundary: expected failures as one line, the rest reported
        if debug:
            raise
        message = expected_message(err)
        if message is not None:
            print(f"{prog}: error: {message}", file=sys.stderr)
            return 1
        where = err.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        place = f" at {Path(where.tb_frame.f_code.co_filename).name}:{where.tb_lineno}" if where is not None else ""
        print(f"{prog}: error: internal error ({type(err).__name__}: {_one_line(str(err))[:300]}){place}; "
              f"please report it with the traceback of: {prog} --debug {shlex.join(argv)}", file=sys.stderr)
        return 2
