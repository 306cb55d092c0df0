"""Reusable ComponentResources. Nothing here reads `pulumi.Config` or imports `stacks`."""
