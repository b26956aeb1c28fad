"""Finding a plugin's contribution by name.

Built-in capabilities are listed in :data:`BUILTIN_PLUGINS` (each capability's contribution
lives with it, in ``services/<capability>/plugin.py``); third-party packages register theirs in
the ``netscript.plugins`` entry-point group::

    [project.entry-points."netscript.plugins"]
    billing = "billing.plugin:contribution"

and ``entry = "module:attribute"`` in ``[plugins.<name>]`` loads one from anywhere importable.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from topology._appfile import PluginEntry
from topology._contribution import Contribution
from topology._errors import AppFileError, UnknownPluginError

ENTRY_POINT_GROUP = "netscript.plugins"

BUILTIN_PLUGINS: dict[str, str] = {
    "registry": "services.registry.plugin:contribution",
    "streams": "services.streams.plugin:contribution",
    "sagas": "services.sagas.plugin:contribution",
    "workers": "services.workers.plugin:contribution",
}
"""Plugins that ship with NetScript: name → ``module:attribute`` of its contribution."""


def known_plugins() -> list[str]:
    """Every plugin name that can be installed without an ``entry``."""
    names = set(BUILTIN_PLUGINS)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def load_contribution(plugin: PluginEntry) -> Contribution:
    """The contribution of ``plugin``: its ``entry``, else the built-in table, else the
    ``netscript.plugins`` entry points.

    Raises :class:`UnknownPluginError` when none has it and :class:`AppFileError` when what was
    found is not a contribution of that plugin.
    """
    target = plugin.entry or BUILTIN_PLUGINS.get(plugin.name)
    if target is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == plugin.name]
        if not found:
            raise UnknownPluginError(plugin=plugin.name, known=known_plugins())
        target = found[0].value
    module_name, _, attribute = target.partition(":")
    try:
        value: Any = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise AppFileError(path=f"[plugins.{plugin.name}]",
                           problem=f"cannot load {target!r} ({exc}); check that the package is "
                                   f"installed and the name is right") from exc
    contribution = value() if isinstance(value, type) else value
    if not isinstance(contribution, Contribution):
        raise AppFileError(path=f"[plugins.{plugin.name}]",
                           problem=f"{target!r} is not a Contribution: it needs plugin_name, "
                                   f"contribute() and the declare_* methods "
                                   f"(subclass topology.BaseContribution)")
    if contribution.plugin_name != plugin.name:
        raise AppFileError(path=f"[plugins.{plugin.name}]",
                           problem=f"{target!r} contributes plugin "
                                   f"{contribution.plugin_name!r}, not {plugin.name!r}: install "
                                   f"it as [plugins.{contribution.plugin_name}]")
    return contribution
