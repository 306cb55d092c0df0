"""Layer builders: validated config in, components composed and wired together."""
