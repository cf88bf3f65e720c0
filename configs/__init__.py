"""metarl's YAML presets (installed as ``metarl.configs``, so a wheel has them too)."""
