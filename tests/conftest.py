"""Suite-wide pytest configuration.

Hypothesis profiles: "dev" for local runs, "ci" (more examples, reproducible, no deadline) when the
environment variable CI is set at all (as on CI, and as Hypothesis itself detects CI). The variable
PGHA_HYPOTHESIS_PROFILE picks one explicitly (mutation testing uses "mutmut").
"""

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=100)
settings.register_profile("ci", max_examples=300, derandomize=True, deadline=None, print_blob=True)
# "mutmut": mutation testing runs the engine tests once per mutant; keep generated cases few.
settings.register_profile("mutmut", max_examples=20, deadline=None, database=None)
settings.load_profile(
    os.environ.get("PGHA_HYPOTHESIS_PROFILE") or ("ci" if "CI" in os.environ else "dev")
)
