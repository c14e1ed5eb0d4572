"""emergence's hydra launcher plugins (hydra discovers plugins only under the ``hydra_plugins`` namespace)."""
