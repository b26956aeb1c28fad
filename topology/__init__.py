"""The resource graph of a NetScript app, its writers (compose.yaml) and the ``netscript`` CLI."""
