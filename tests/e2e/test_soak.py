"""The soak run (tests/soak.py) in CI: 50 producers + 200 signaling clients + 5 HLS readers for
OPENKVS_SOAK_SECONDS (default 120); RSS and open descriptors of the server must stay flat."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import soak  # noqa: E402


def test_soak():
    seconds = float(os.environ.get("OPENKVS_SOAK_SECONDS", "120"))
    soak.run(seconds, interval=min(10.0, seconds / 6))
