"""The tunnel section (`homelab:tunnel`, issue 25): routes reachable from the internet without
an open port, through a Cloudflare Tunnel, with their public DNS records.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from stacks.config_base import Image, Label, MemoryMb, Model, Restart, SecretKey, SourceNetwork, Subdomain

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


class TailscaleConfig(Model):
    """A Tailscale node for the homelab (userspace networking): with `routes`, a subnet router
    that lets your tailnet reach those LAN networks (and the routed names, with dns.resolver)."""

    api_key_secret: SecretKey = Field(
        description="Config key (set with --secret) holding a Tailscale API access token (keys: write)."
    )
    tailnet: str = Field(default="-", description="The tailnet (default `-`: the API key's own).")
    host: Label | None = Field(default=None, description="Host that runs tailscale (default: the first).")
    hostname: Label = Field(default="homelab", description="The node's name in the tailnet.")
    routes: list[SourceNetwork] = Field(
        default_factory=list,
        description="LAN networks (CIDR) to advertise as subnet routes; approve them in the admin "
        "console or with autoApprovers in your tailnet policy.",
    )
    tags: list[Annotated[str, Field(pattern=r"^tag:[a-z0-9-]+$")]] = Field(
        default_factory=list,
        description="ACL tags the node's auth key gives it (e.g. tag:homelab; your policy must own them).",
    )
    image: Image | None = Field(default=None, description="Override the pinned image.")
    memory_mb: MemoryMb | None = Field(default=None, description="Memory limit (MB).")
    restart: Restart = Field(default="unless-stopped", description="Docker restart policy.")


class TunnelConfig(Model):
    cloudflare: CloudflareTunnelConfig | None = Field(default=None, description="A Cloudflare Tunnel.")
    tailscale: TailscaleConfig | None = Field(default=None, description="A Tailscale node (subnet router).")
