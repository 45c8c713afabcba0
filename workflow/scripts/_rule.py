"""Shared start of every rule script: log to the rule's log file, import xinc from this tree."""

import logging
import sys
import traceback
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    # conda environments hold xinc's dependencies; xinc itself comes from this source tree
    sys.path.insert(0, str(PROJECT_ROOT))


def start(snakemake) -> None:
    """Send stderr (tracebacks, progress bars, logging) to the rule's log file; echo training
    evaluations and warnings to the terminal so that a user sees progress while models train,
    and the error of a failing job, whose traceback stays in the log."""
    sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 - lives for the job
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    job = " ".join(f"{key}={value}" for key, value in snakemake.wildcards.items())
    prefix = f"[{snakemake.rule} {job}]".replace(" ]", "]")
    echo = logging.StreamHandler(sys.stdout)
    echo.setFormatter(logging.Formatter(f"{prefix} %(message)s"))
    logging.getLogger("xinc.train").addHandler(echo)

    def report(kind, error, trace) -> None:
        traceback.print_exception(kind, error, trace, file=sys.stderr)
        print(f"{prefix} error: {error}\n(full traceback in {snakemake.log[0]})",
              file=sys.__stderr__, flush=True)

    sys.excepthook = report


def listed(files) -> list:
    """A named input of one file or several, as a list."""
    return [files] if isinstance(files, str) else list(files)
