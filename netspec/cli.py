"""What every command line shares: one way to fail, and ``key=value`` arguments."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from .errors import NetspecError


def fail(message: str, status: int = 2) -> NoReturn:
    """Print ``error: message`` to stderr and exit (2: the user can fix what went wrong)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn any :class:`NetspecError` raised inside into one line and exit status 2."""
    try:
        yield
    except NetspecError as e:
        fail(str(e))


def emit(text: str) -> None:
    """Print a page; a reader that stops early (``| head``) ends it quietly."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def parse_args(argv: list[str], usage: str, known: dict[str, object]) -> tuple[dict, list[str]]:
    """``key=value`` arguments: the ``known`` ones (with defaults) and the rest (overrides)."""
    if any(a in ("-h", "--help", "help") for a in argv):
        print(usage)
        sys.exit(0)
    options, rest = dict(known), []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq:
            fail(f"arguments are key=value, got '{arg}'\n{usage}")
        if key in known:
            options[key] = value
        else:
            rest.append(arg)
    return options, rest


def run_hydra(config_path: str, config_name: str, task, schema=None) -> None:
    """``hydra.main(...)(task)()``, with a bad override or config value (an unknown group option
    or key, a value of the wrong type, a parse error) reported as one line and exit status 2
    instead of Hydra's page of text and status 1. With ``schema`` (the config's dataclass), a
    top-level key it lacks (``+foo=1``, which Hydra adds to any config) is refused too."""
    import functools

    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    started = []

    @functools.wraps(task)          # Hydra names the job (and its log) after the task
    def wrapped(cfg):
        started.append(True)
        if schema is not None:
            _refuse_unknown_keys(cfg, schema)
        try:
            return task(cfg)
        except SystemExit as e:
            if e.code == 2:
                _drop_untouched_run_dir()
            raise

    os.environ["HYDRA_FULL_ERROR"] = "1"      # raise composition errors to us, not print them
    sys.argv[1:] = info_before_overrides(sys.argv[1:])
    try:
        hydra.main(version_base=None, config_path=config_path, config_name=config_name)(wrapped)()
    except (HydraException, OmegaConfBaseException) as e:
        if started:
            raise
        fail(_one_line(e, config_path))


_INFO_TOPICS = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


def info_before_overrides(args: list[str]) -> list[str]:
    """``--info spec=x``: Hydra's --info takes an optional topic and would read the override as
    one (and refuse it); the topic it means is ``all``."""
    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        nxt = args[i + 1] if i + 1 < len(args) else None
        if arg in ("--info", "-i") and nxt is not None and nxt not in _INFO_TOPICS \
                and not nxt.startswith("-"):
            out.append("all")
    return out


def _refuse_unknown_keys(cfg, schema) -> None:
    import dataclasses

    from .errors import did_you_mean
    known = {f.name for f in dataclasses.fields(schema)}
    unknown = [k for k in cfg if k not in known]
    if unknown:
        _drop_untouched_run_dir()
        fail(f"{unknown[0]}: no such key{did_you_mean(unknown[0], known)} (a key added with "
             f"+{unknown[0]}=... is read by nothing)")


def _drop_untouched_run_dir() -> None:
    """A refused run leaves no directory behind: Hydra's run dir, if it holds only its logs."""
    import shutil
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    try:
        out = Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return
    entries = list(out.iterdir()) if out.is_dir() else []
    if all(p.name == ".hydra" or (p.suffix == ".log" and p.is_file()) for p in entries):
        _close_file_logs_under(out)        # a log opened later would recreate the folder, or fail
        shutil.rmtree(out, ignore_errors=True)
        cwd = Path.cwd().resolve()          # and the dated folders Hydra made for it, now empty
        for parent in out.resolve().parents:
            if parent == cwd or cwd not in parent.parents or any(parent.iterdir()):
                break
            parent.rmdir()


def _close_file_logs_under(folder) -> None:
    """Detach and close the logging file handlers (Hydra's job log) that write under ``folder``."""
    import logging
    from pathlib import Path
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    root = Path(folder).resolve()
    for lg in loggers:
        for h in list(lg.handlers):
            name = getattr(h, "baseFilename", None)
            if name and root in Path(name).resolve().parents:
                lg.removeHandler(h)
                h.close()


def _one_line(e: Exception, config_path: str) -> str:
    """The first line of a Hydra or OmegaConf error, with the key it names."""
    import re
    from pathlib import Path

    from .errors import did_you_mean
    text = str(e).strip()
    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if missing:
        group, option = missing[1], missing[2]
        options = sorted(f.stem for f in (Path(config_path) / group).glob("*.yaml"))
        return (f"{group}={option}: no such {group}{did_you_mean(option, options)}; use one "
                f"of: {', '.join(options)}")
    first = text.splitlines()[0] if text else type(e).__name__
    key = re.search(r"full_key: (\S+)", text)
    first = re.sub(r"^Error merging override ", "", first)
    if key and key[1] not in first:
        first = f"{key[1]}: {first}"
    cause = e.__cause__
    if cause is not None and str(cause).strip() and str(cause).strip().splitlines()[0] not in first:
        first = f"{first}: {str(cause).strip().splitlines()[0]}"
    return first
