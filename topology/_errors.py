"""Errors of the topology: the app file, plugins, the resource graph and its runners.

::

    NetScriptError
    └── TopologyError
        ├── AppFileError                netscript.toml is missing, unreadable or malformed
        ├── UnknownPluginError          a plugin named in the app file cannot be found
        ├── DuplicateContributionError  two contributions claim the same plugin name
        ├── DuplicateResourceError      two contributions add a resource of the same name
        ├── MissingReferenceError       a reference names a resource the graph does not have
        ├── DependencyCycleError        resources depend on each other in a loop
        ├── PortConflictError           two processes would listen on the same port
        ├── MissingSecretError          a secret the environment needs has no value
        ├── ProvisionError              `netscript init` could not create a topic or a schema
        ├── PipelineError               `netscript do`: an unknown, duplicate or cyclic step
        ├── StepSkipped                 a step cannot run here (no Docker); not a failure
        └── MigrationError              a plugin's SQL migration failed or was edited
"""

from __future__ import annotations

from collections.abc import Sequence

from services._errors import NetScriptError


class TopologyError(NetScriptError):
    """Base class of the topology's errors."""


class AppFileError(TopologyError):
    """The app file cannot be used as it is."""

    def __init__(self, *, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class UnknownPluginError(TopologyError):
    """A plugin of the app file is neither built in nor installed."""

    def __init__(self, *, plugin: str, known: Sequence[str]) -> None:
        self.plugin = plugin
        self.known = tuple(known)
        super().__init__(
            f"unknown plugin {plugin!r} (known: {', '.join(self.known) or 'none'}): install a "
            f"package that registers it in the 'netscript.plugins' entry-point group, or set "
            f'entry = "module:attribute" in [plugins.{plugin}]'
        )


class DuplicateContributionError(TopologyError):
    """Two contributions name the same plugin."""

    def __init__(self, *, plugin: str) -> None:
        self.plugin = plugin
        super().__init__(
            f"plugin {plugin!r} contributes twice: each plugin may appear once in the graph; "
            f"remove the duplicate from the plugin list"
        )


class DuplicateResourceError(TopologyError):
    """Two sources add a resource with the same name."""

    def __init__(self, *, resource: str, first: str, second: str) -> None:
        self.resource = resource
        self.first = first
        self.second = second
        super().__init__(
            f"resource {resource!r} is added by both {first} and {second}: resource names are "
            f"unique in the graph; rename one of them"
        )


class MissingReferenceError(TopologyError):
    """A reference points at a resource that is not in the graph."""

    def __init__(self, *, path: Sequence[str], reference: str, hint: str) -> None:
        self.path = tuple(path)
        self.reference = reference
        super().__init__(
            f"{' → '.join(self.path)} → {reference!r}: no such resource in the graph; {hint}"
        )


class DependencyCycleError(TopologyError):
    """Resources depend on each other in a loop, so none of them could start first."""

    def __init__(self, *, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__(
            f"dependency cycle: {' → '.join(self.cycle)}; remove one of these references"
        )


class PortConflictError(TopologyError):
    """Two resources would listen on the same port."""

    def __init__(self, *, port: int, resources: Sequence[str]) -> None:
        self.port = port
        self.resources = tuple(resources)
        super().__init__(
            f"port {port} is used by {' and '.join(self.resources)}: give one of them another "
            f"port (port = … in netscript.toml, or --port NAME=PORT)"
        )


class MissingSecretError(TopologyError):
    """An environment value needs a secret nobody set."""

    def __init__(self, *, secret: str, resource: str, env_file: str) -> None:
        self.secret = secret
        self.resource = resource
        super().__init__(
            f"{resource} needs the secret {secret}, which is neither in the environment nor in "
            f"{env_file}: run `netscript compose` (it adds generated secrets to {env_file}) or "
            f"export {secret}"
        )


class ProvisionError(TopologyError):
    """A declared topic or schema could not be created on the log or the registry."""

    def __init__(self, *, item: str, problem: str) -> None:
        self.item = item
        self.problem = problem
        super().__init__(f"cannot provision {item}: {problem}")


class PipelineError(TopologyError):
    """The steps of ``netscript do`` cannot form a pipeline (unknown, duplicate, cyclic)."""

    def __init__(self, *, step: str, problem: str) -> None:
        self.step = step
        self.problem = problem
        super().__init__(f"step {step!r}: {problem}")


class StepSkipped(TopologyError):
    """Raised by a step that cannot run in this environment; it is reported, not failed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class MigrationError(TopologyError):
    """A plugin's SQL migration could not be applied."""

    def __init__(self, *, plugin: str, migration: str, problem: str) -> None:
        self.plugin = plugin
        self.migration = migration
        self.problem = problem
        super().__init__(f"migration {plugin}/{migration}: {problem}")
