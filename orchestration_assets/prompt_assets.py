"""Prompt assets of a family: ``<task>_prompt`` registers the task's current prompt template in the registry.

One asset per task an LLM answers (a route to a remote model) or whose family gives a ``prompt``
file. A task's first template becomes the champion; a changed file (or changed ``instructions``)
becomes the challenger and live traffic keeps the champion's text until it is promoted (registry
CLI ``prompts promote``, or a gated evaluation). An unchanged template registers nothing.
"""

import difflib

import dagster as dg
import pandas as pd

from resources.providers.definition import TaskDefinition
from resources.registry.resource import ModelRegistryResource

from .family import Family
from .provision import actor


def prompted_tasks(family: Family) -> list[TaskDefinition]:
    """Tasks whose LLM prompt is versioned: those routed to a model, and those with a prompt file."""
    return [t for t in family.tasks.values() if family.route(t.name).remote_chain() or t.spec.prompt]


def prompt_asset(family: Family, task: TaskDefinition) -> dg.AssetsDefinition:
    where = task.spec.prompt or "the platform's default template"

    @dg.asset(
        key=dg.AssetKey(family.key(f"{task.name}_prompt")),
        group_name=family.group("models"),
        owners=family.owners,
        kinds={"python", "jinja"},
        code_version="1",
        description=(f"The LLM prompt template of {task.name!r} ({where}) registered as a prompt version: the "
                     "first becomes champion, a changed text the challenger. LLM calls use the text of the "
                     f"alias routing.{task.name}.prompt names (default champion), never the file directly."),
    )
    def prompt(context: dg.AssetExecutionContext, registry: ModelRegistryResource) -> dg.MaterializeResult:
        from resources.providers.prompt_templates import PromptTemplateError, template_text

        try:  # the file may have changed since the definitions loaded
            text = template_text(task)
        except PromptTemplateError as exc:
            raise dg.Failure(f"{family.source}: {exc}") from None
        prompts = registry.prompts()
        before = {v.version for v in prompts.versions(family.name, task.name)}
        got = prompts.register(family.name, task.name, text, actor=actor(context))
        champion = prompts.alias(family.name, task.name, "champion")
        created = got.version not in before
        diff = ""
        if champion is not None and champion.version != got.version:
            diff = "".join(difflib.unified_diff(champion.text.splitlines(keepends=True), got.text.splitlines(keepends=True),
                                                f"champion {champion.version}", f"{got.alias or 'retired'} {got.version}"))
        context.log.info(f"{task.key}: prompt {got.version} ({got.alias or 'retired'}), "
                         f"{'registered' if created else 'already registered'}")
        return dg.MaterializeResult(metadata={
            "version": dg.MetadataValue.text(got.version),
            "alias": dg.MetadataValue.text(got.alias or "retired"),
            "registered": created,
            "champion_version": dg.MetadataValue.text(champion.version if champion else "none"),
            "diff_to_champion": dg.MetadataValue.md(f"```diff\n{diff}```" if diff else "(same text as the champion)"),
        })

    return prompt


def prompt_assets(family: Family) -> list[dg.AssetsDefinition]:
    return [prompt_asset(family, t) for t in prompted_tasks(family)]


def live_task(family: Family, task: TaskDefinition, registry: ModelRegistryResource, who: str) -> TaskDefinition:
    """``task`` bound to the registered prompt its route names, for a run's LLM calls.

    A route naming a version or alias the registry lacks fails the step, naming the key path.
    """
    from resources.registry import RegistryError, bind_prompt

    ref = family.route(task.name).prompt
    try:
        return bind_prompt(registry.prompts(), task, ref, actor=who)
    except RegistryError as exc:
        raise dg.Failure(f"{family.source}: routing.{task.name}.prompt: {ref!r}: {exc}") from None


def with_prompt_versions(frame: pd.DataFrame, task: TaskDefinition, local_name: str) -> pd.DataFrame:
    """``frame`` with ``<task>_prompt_version``: the registered prompt of each row an LLM answered."""
    from resources.providers.prompts import prompt_version

    version = prompt_version(task)
    by_llm = frame[f"{task.name}_provider"].fillna(local_name) != local_name
    values = pd.Series([version if b else None for b in by_llm], index=frame.index, dtype=object)
    return frame.assign(**{f"{task.name}_prompt_version": values})
