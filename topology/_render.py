"""``netscript graph``: the resolved graph as a table for people and as a Mermaid flowchart."""

from __future__ import annotations

import re

from rich.table import Table

from topology._graph import Graph, Node


def graph_table(graph: Graph) -> Table:
    """One row per resource: kind, origin, ports, what it references and its environment."""
    title = f"{graph.app.name}: the graph for {graph.target.value}"
    table = Table(title=title + (" (cluster)" if graph.cluster else ""), show_lines=True)
    for column in ("resource", "kind", "from", "url", "references", "environment"):
        table.add_column(column, overflow="fold", no_wrap=column in ("resource", "url"))
    for node in graph.nodes:
        resource = node.resource
        kind = resource.kind.value
        if resource.provided_by:
            kind += f" (served by {resource.provided_by})"
        elif not resource.managed:
            kind += " (external)"
        elif resource.once:
            kind += " (runs once)"
        origin = f"plugin {resource.plugin}" if resource.plugin else (
            "infrastructure" if resource.role or resource.name == "init" else "netscript.toml")
        references = "\n".join(f"{d.name} ({d.via}, {d.wait.value})" for d in node.dependencies)
        env = "\n".join(f"{k}={v}" for k, v in node.env.items())
        table.add_row(node.name, kind, origin, _urls(node), references, env)
    return table


def _urls(node: Node) -> str:
    lines = []
    for endpoint in node.resource.endpoints:
        address = f"{node.host}:{node.ports[endpoint.name]}"
        url = address if endpoint.scheme == "tcp" else f"{endpoint.scheme}://{address}"
        lines.append(url if len(node.resource.endpoints) == 1 else f"{endpoint.name}: {url}")
    return "\n".join(lines)


def mermaid_chart(graph: Graph) -> str:
    """A Mermaid flowchart: one node per resource, an arrow from each to what it references.

    Dotted arrows do not wait (telemetry); thick ones wait for a job to finish (``init``).
    """
    lines = ["flowchart LR"]
    for node in graph.nodes:
        resource = node.resource
        port = f" :{node.port}" if node.port else ""
        shape = ("[(", ")]") if resource.kind.value in ("database", "cache") else (
            ("[[", "]]") if resource.once else ("[", "]"))
        label = f"{resource.name}<br/>{resource.kind.value}{port}"
        lines.append(f'    {_id(resource.name)}{shape[0]}"{label}"{shape[1]}')
    for node in graph.nodes:
        for dep in node.dependencies:
            arrow = {"started": "-.->", "completed": "==>"}.get(dep.wait.value, "-->")
            lines.append(f"    {_id(node.name)} {arrow}|{dep.via}| {_id(dep.name)}")
    return "\n".join(lines)


def _id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)
