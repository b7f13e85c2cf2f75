"""The code location: every family of ``defs/`` (one AIWorkflow component each) plus the platform."""

import warnings
from pathlib import Path

import dagster as dg

# Partitioned asset checks and freshness policies are Dagster preview/beta features this code
# location uses on purpose; their warnings would repeat on every load.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from .executors import executor_setting  # noqa: E402
from .platform import platform_defs  # noqa: E402


def build_definitions(resources: dict[str, object] | None = None) -> dg.Definitions:
    """The families of the project's defs folder with the given resources (tests pass temp ones)."""
    executor_setting()  # a bad PLATFORM_EXECUTOR is one ConfigError here, not an error inside each family's build
    families = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    return dg.Definitions.merge(families, platform_defs(resources))


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
