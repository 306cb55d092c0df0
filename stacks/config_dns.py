"""The dns section (`homelab:dns`, issue 25): names for the routes on the LAN.

`resolver`: a split-horizon resolver on one host that answers each routed name with the LAN
address of the host serving it (`hosts[].lan-address`) and forwards the rest upstream.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from stacks.config_base import (
    BindAddress,
    Model,
    Port,
    SecretKey,
    SourceNetwork,
    Subdomain,
)
from stacks.config_homelab import ServiceConfig


class ResolverConfig(ServiceConfig):
    """Unbound on one host: routed names answered locally, everything else forwarded."""

    enabled: bool = Field(default=False, description="Run the resolver.")
    bind_address: BindAddress | None = Field(
        default=None,
        description="The one host address DNS is published on (its LAN address, e.g. 192.168.1.10), "
        "never every interface.",
    )
    port: Port = Field(default=53, description="Port on bind-address (UDP and TCP).")
    allow_from: list[SourceNetwork] = Field(
        default_factory=list,
        description="Networks (CIDR) that may ask; every other source is refused. Questions from the "
        "host itself come from the Docker bridge's gateway address.",
    )
    upstreams: list[BindAddress] = Field(
        default_factory=list,
        description="Resolvers (IP addresses) every other question is forwarded to, e.g. your "
        "router or a public resolver.",
    )

    @model_validator(mode="after")
    def _complete(self) -> ResolverConfig:
        if not self.enabled:
            return self
        missing = [
            f"{key} ({why})"
            for key, value, why in (
                ("bind-address", self.bind_address, "the host's LAN address to answer on"),
                ("allow-from", self.allow_from, "the networks that may ask, e.g. [192.168.1.0/24]"),
                ("upstreams", self.upstreams, "where every other name is resolved"),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"the resolver needs {', '.join(missing)}")
        return self


class PublicDnsConfig(Model):
    """Public records for routes served straight from a host (not through the tunnel)."""

    provider: Literal["cloudflare"] = Field(description="The DNS provider whose Pulumi package writes them.")
    zone_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] = Field(
        description="The zone of homelab:domain."
    )
    api_token_secret: SecretKey = Field(
        description="Config key (set with --secret) holding an API token with Zone: DNS: Edit."
    )
    routes: list[Subdomain] = Field(
        min_length=1,
        description="Routed names to publish at their host's public-address (hosts[].public-address).",
    )


class DnsConfig(Model):
    resolver: ResolverConfig = Field(default_factory=ResolverConfig)
    public: PublicDnsConfig | None = Field(
        default=None, description="Public DNS records for routes reachable on a host's public address."
    )
