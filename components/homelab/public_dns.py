"""Public DNS records for routes served straight from a host (issue 25): an A or AAAA record per
name at the host's public address, through the DNS provider's Pulumi package (pulumi-cloudflare
6.23.1's DnsRecord: zone_id, name, type, content, ttl, proxied). Routes published through the
tunnel get their CNAME there (components/homelab/tunnel.py); every other route gets no public
record. The SDK is imported only when records are configured.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi

TTL = 300  # seconds ("between 60 and 86400": the SDK's DnsRecord ttl)


@dataclass(frozen=True)
class PublicRecordsArgs:
    zone_id: str
    api_token: pulumi.Input[str]
    records: tuple[tuple[str, str], ...]  # (fqdn, public address)


def record_type(address: str) -> str:
    return "AAAA" if ipaddress.ip_address(address).version == 6 else "A"


class PublicRecords(pulumi.ComponentResource):
    def __init__(self, name: str, args: PublicRecordsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("homelab:dns:PublicRecords", name, None, opts)
        import pulumi_cloudflare as cloudflare

        provider = cloudflare.Provider(
            f"{name}-api", api_token=args.api_token, opts=pulumi.ResourceOptions(parent=self)
        )
        for fqdn, address in args.records:
            cloudflare.DnsRecord(
                f"{name}-{fqdn}",
                zone_id=args.zone_id,
                name=fqdn,
                type=record_type(address),
                content=address,
                ttl=TTL,
                proxied=False,  # straight to the host: its own certificate, no Cloudflare proxy
                comment="homelab public route (managed by Pulumi)",
                opts=pulumi.ResourceOptions(parent=self, provider=provider),
            )
        self.register_outputs({})
