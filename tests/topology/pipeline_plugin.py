"""Test plugins for ``netscript do``: contributed steps, migrations, a topic and a schema.

``pipe`` contributes four steps (``pipe-a`` → ``pipe-b`` → ``pipe-c``, and ``pipe-d`` alone);
``fail = "pipe-b"`` in ``[plugins.pipe]`` makes that step raise. ``stock`` declares a topic and
a schema subject; :class:`MigratingContribution` declares the migrations it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from topology import (
    BaseContribution,
    ContributionContext,
    Migration,
    SchemaSubject,
    Step,
    StepContext,
    TopicSpec,
)
from topology._pipeline import StepAction


class PipeContribution(BaseContribution):
    """Four steps; the one named by the ``fail`` setting raises."""

    plugin_name = "pipe"

    def steps(self, context: ContributionContext) -> Sequence[Step]:
        failing = str(context.settings.get("fail", ""))

        def action(name: str) -> StepAction:
            async def run(_: StepContext) -> str:
                if name == failing:
                    raise RuntimeError(f"{name} broke on purpose")
                return f"{name} done"
            return run

        return [
            Step(name="pipe-a", run=action("pipe-a"), description="first"),
            Step(name="pipe-b", run=action("pipe-b"), depends_on=("pipe-a",)),
            Step(name="pipe-c", run=action("pipe-c"), depends_on=("pipe-b",)),
            Step(name="pipe-d", run=action("pipe-d")),
        ]


class StockContribution(BaseContribution):
    """A topic and a schema subject (its schema file next to the app file)."""

    plugin_name = "stock"

    def __init__(self, topic: str = "stock-events", subject: str = "stock-value") -> None:
        self._topic = topic
        self._subject = subject

    def declare_topics(self, context: ContributionContext) -> Sequence[TopicSpec]:
        return [TopicSpec(name=self._topic, partitions=2)]

    def declare_schemas(self, context: ContributionContext) -> Sequence[SchemaSubject]:
        return [SchemaSubject(subject=self._subject, schema=Path("Stock.avsc"))]


class MigratingContribution(BaseContribution):
    """The migrations it is constructed with."""

    plugin_name = "migrating"

    def __init__(self, migrations: Sequence[Migration]) -> None:
        self._migrations = list(migrations)

    def migrations(self, context: ContributionContext) -> Sequence[Migration]:
        return self._migrations
