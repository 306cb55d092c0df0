"""The tunnel section (`homelab:tunnel`, issue 25): routes reachable from the internet without
an open port, through a Cloudflare Tunnel, with their public DNS records.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from stacks.config_base import Image, Label, MemoryMb, Model, Restart, SecretKey, Subdomain

CloudflareId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class CloudflareTunnelConfig(Model):
    """A remotely managed Cloudflare Tunnel: cloudflared on one host dials out to Cloudflare,
    which serves `routes` under your zone; nothing listens on the host for them."""

    account_id: CloudflareId = Field(description="Your Cloudflare account ID (32 hex digits).")
    zone_id: CloudflareId = Field(description="The zone (your domain) the public names are in.")
    api_token_secret: SecretKey = Field(
        description="Config key (set with --secret) holding an API token with Account: Cloudflare "
        "Tunnel: Edit and Zone: DNS: Edit.",
    )
    host: Label | None = Field(default=None, description="Host that runs cloudflared (default: the first).")
    routes: list[Subdomain] = Field(
        description="Routed names (as in the services' hostname) to publish through the tunnel.",
        min_length=1,
    )
    image: Image | None = Field(default=None, description="Override the pinned image.")
    memory_mb: MemoryMb | None = Field(default=None, description="Memory limit (MB).")
    restart: Restart = Field(default="unless-stopped", description="Docker restart policy.")


class TunnelConfig(Model):
    cloudflare: CloudflareTunnelConfig | None = Field(default=None, description="A Cloudflare Tunnel.")
