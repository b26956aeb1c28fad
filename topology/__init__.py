"""The topology: the app file, the resource graph built from plugin contributions, its writers
(``compose.yaml``) and its local runner (``netscript up``).

- the app file: :func:`load_app_file` reads ``netscript.toml`` into an :class:`AppFile`;
- the extension point: :class:`Contribution` (subclass :class:`BaseContribution`), given a
  :class:`GraphBuilder` and a :class:`ContributionContext`; :func:`compose_app_host` composes
  every plugin's slice into an :class:`AppHost`;
- values: :class:`Resource` of a :class:`ResourceKind`, its :class:`Endpoint` list,
  :class:`References`, :class:`Export`, :class:`HealthCheck`, :class:`Secret`,
  :class:`TopicSpec`, :class:`SchemaSubject`;
- the graph: :func:`build_graph` resolves references in two passes into a :class:`Graph` of
  :class:`Node` for a :class:`Target` (``local`` or ``compose``);
- pipelines (``netscript do``): :class:`Step` values run by a :class:`Pipeline` with a
  :class:`StepContext`; plugins add steps and :class:`Migration` values
  (:class:`PipelineContribution`);
- errors: :class:`TopologyError` and its tree (see ``_errors``).

The command line lives in :mod:`topology.cli`.
"""

from topology._appfile import (
    APP_FILE,
    AppFile,
    AppResourceEntry,
    CacheSettings,
    ClusterSettings,
    DashboardSettings,
    DatabaseSettings,
    LogKind,
    LogSettings,
    PluginEntry,
    default_app_file,
    load_app_file,
    parse_app_file,
)
from topology._contribution import (
    AppHost,
    BaseContribution,
    Contribution,
    ContributionContext,
    GraphBuilder,
    PipelineContribution,
    PluginSlice,
    compose_app_host,
)
from topology._errors import (
    AppFileError,
    DependencyCycleError,
    DuplicateContributionError,
    DuplicateResourceError,
    MigrationError,
    MissingReferenceError,
    MissingSecretError,
    PipelineError,
    PortConflictError,
    StepSkipped,
    TopologyError,
    UnknownPluginError,
)
from topology._graph import Graph, Node, build_graph
from topology._migrations import Migration
from topology._model import (
    Dependency,
    Endpoint,
    Export,
    HealthCheck,
    ProvidedEndpoint,
    References,
    Resource,
    ResourceKind,
    Role,
    SchemaSubject,
    Secret,
    Target,
    TopicSpec,
    WaitFor,
)
from topology._pipeline import (
    Pipeline,
    PipelineReport,
    Step,
    StepContext,
    StepResult,
    StepStatus,
)
from topology._plugins import BUILTIN_PLUGINS, ENTRY_POINT_GROUP, known_plugins, load_contribution

__all__ = [
    "APP_FILE",
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "AppFile",
    "AppFileError",
    "AppHost",
    "AppResourceEntry",
    "BaseContribution",
    "CacheSettings",
    "ClusterSettings",
    "Contribution",
    "ContributionContext",
    "DashboardSettings",
    "DatabaseSettings",
    "Dependency",
    "DependencyCycleError",
    "DuplicateContributionError",
    "DuplicateResourceError",
    "Endpoint",
    "Export",
    "Graph",
    "GraphBuilder",
    "HealthCheck",
    "LogKind",
    "LogSettings",
    "Migration",
    "MigrationError",
    "MissingReferenceError",
    "MissingSecretError",
    "Node",
    "Pipeline",
    "PipelineContribution",
    "PipelineError",
    "PipelineReport",
    "PluginEntry",
    "PluginSlice",
    "PortConflictError",
    "ProvidedEndpoint",
    "References",
    "Resource",
    "ResourceKind",
    "Role",
    "SchemaSubject",
    "Secret",
    "Step",
    "StepContext",
    "StepResult",
    "StepSkipped",
    "StepStatus",
    "Target",
    "TopicSpec",
    "TopologyError",
    "UnknownPluginError",
    "WaitFor",
    "build_graph",
    "compose_app_host",
    "default_app_file",
    "known_plugins",
    "load_app_file",
    "load_contribution",
    "parse_app_file",
]
