"""Families from any folder: the same builders the component uses, for tools and the conformance suite.

The code location loads ``orchestration_assets/defs`` through Dagster's component tree; a user's
own defs folder (``--defs``), a test's temporary family or a CLI command loads its families here.
"""

from pathlib import Path

import dagster as dg
import yaml

from .family import Family, SpecError, display_path

COMPONENT_TYPE = "orchestration_assets.components.AIWorkflow"


def family_folders(defs_folder: str | Path) -> list[Path]:
    """Sub-folders holding a ``defs.yaml`` of the AIWorkflow type, sorted by name."""
    out = []
    for path in sorted(Path(defs_folder).glob("*/defs.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SpecError(display_path(path), [("", f"not valid YAML: {exc}")]) from None
        if isinstance(doc, dict) and doc.get("type") == COMPONENT_TYPE:
            out.append(path.parent)
    return out


def load_families(defs_folder: str | Path) -> list[Family]:
    from .components import known_models

    models = known_models()
    return [Family.load(folder, models) for folder in family_folders(defs_folder)]


def family_definitions(families: list[Family], resources: dict[str, object] | None = None) -> dg.Definitions:
    """Definitions of these families plus the platform's (resources, sensors)."""
    from .components import build_family_defs
    from .platform import platform_defs

    return dg.Definitions.merge(*(build_family_defs(f) for f in families), platform_defs(resources))


def find_family(name: str, defs_folder: str | Path | None = None) -> Family:
    """One family of the project's (or the given) defs folder, by name."""
    folder = Path(defs_folder) if defs_folder else Path(__file__).resolve().parent / "defs"
    for family in load_families(folder):
        if family.name == name:
            return family
    names = ", ".join(f.name for f in load_families(folder)) or "(none)"
    raise SpecError(display_path(folder), [("", f"no family named {name!r}; families: {names}")])
