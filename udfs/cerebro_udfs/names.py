"""Names users choose for models, datasets and workloads, and what each may look like.

The same patterns are the catalog's check constraints (``sql/incremental/001-catalog.sql``);
Python checks first so that a bad name gets a message that says what is accepted rather than
a constraint violation. A test compares these with the constraints in the catalog.
"""

from __future__ import annotations

import re

MODEL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MODEL_NAME_HINT = "lower-case letters, digits and _, starting with a letter or _"

DATASET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
DATASET_NAME_HINT = (
    "dataset names start with a letter or _ and use letters, digits, _ . - (max 63)"
)

WORKLOAD_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./:-]{0,62}$")
WORKLOAD_NAME_HINT = "letters, digits and _ . / : - (at most 63)"
