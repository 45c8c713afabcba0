"""Shared start of every rule script: log to the rule's log file, import xinc from this tree."""

import logging
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    # conda environments hold xinc's dependencies; xinc itself comes from this source tree
    sys.path.insert(0, str(PROJECT_ROOT))


def start(snakemake) -> None:
    """Send stderr (tracebacks, progress bars, logging) to the rule's log file, and echo
    training evaluations to the terminal so that a user sees progress while models train."""
    sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 - lives for the job
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    job = " ".join(f"{key}={value}" for key, value in snakemake.wildcards.items())
    echo = logging.StreamHandler(sys.stdout)
    echo.setFormatter(logging.Formatter(f"[{snakemake.rule} {job}] %(message)s"))
    logging.getLogger("xinc.train").addHandler(echo)
