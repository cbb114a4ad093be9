"""sources.yaml and the members file: loading and validation (config), the members'
directory import, safe YAML edits. May import: models, errors."""
