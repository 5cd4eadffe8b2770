"""Population-Based Training engine: params (config), mutation, selection (pure), workspace (shared folder)."""
