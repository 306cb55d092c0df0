"""Docker building blocks: a prepared host with its provider, and a generic service."""
