"""Remote access without open ports (issue 25): a remotely managed Cloudflare Tunnel.

cloudflared on one host dials out to Cloudflare and carries the public names' requests to that
host's HAProxy over the stack network (`https://haproxy:443`, with each name as SNI, so the
proxy serves its certificate and routes it as any other request). Cloudflare holds the tunnel
and its ingress rules (`config_src: cloudflare`) and answers each public name through a proxied
CNAME to `<tunnel id>.cfargotunnel.com` (cloudflare/cloudflared component-tests/setup.py @
2026.8.2). Nothing on the host listens for them. The resources are pulumi-cloudflare's
(6.23.1: ZeroTrustTunnelCloudflared, ZeroTrustTunnelCloudflaredConfig, DnsRecord, and the
token from getZeroTrustTunnelCloudflaredToken), imported only when a tunnel is configured
(the SDK takes seconds to load).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.docker.spec import (
    Basics,
    ContainerSpec,
    FileUpload,
    MetricsEndpoint,
    SecretRef,
    ServiceSpec,
    secret_file,
)
from components.homelab.images import CONTRACTS

KIND = "Tunnel"
TOKEN_SECRET = "tunnel-token"  # the shared secret holding the tunnel's token
CA_SECRET = "tls-ca-certificate"  # the stack CA (stacks.plan.IDENTITY_CA), when it signs the origin
CA_FILE = "/etc/cloudflared/origin-ca.pem"
METRICS_PORT = 2000  # TUNNEL_METRICS (cmd/cloudflared/tunnel/cmd.go); /metrics (metrics/metrics.go)
ORIGIN = "https://haproxy:443"  # the proxy's alias on the stack network, its HTTPS frontend
UID = CONTRACTS["tunnel"].uid


def cloudflared(b: Basics, origin_ca: bool) -> ServiceSpec:
    """cloudflared, its token from a file (TUNNEL_TOKEN_FILE, cmd/cloudflared/tunnel/
    subcommands.go @ 2026.8.2) of its user alone; the stack CA beside it when it signed the
    proxy's certificates (the ingress rules' `caPool` names it)."""
    token = secret_file("tunnel-token", TOKEN_SECRET, owner=UID)
    uploads = [token]
    if origin_ca:
        uploads.append(FileUpload(CA_FILE, SecretRef("{" + CA_SECRET + "}"), mode="0444"))
    container = ContainerSpec(
        name="cloudflared",
        image=b.image,
        privileges=CONTRACTS["tunnel"].privileges(),
        # The image's ENTRYPOINT is ["cloudflared", "--no-autoupdate"] (Dockerfile).
        command=("tunnel", "run"),
        env={"TUNNEL_TOKEN_FILE": token.path, "TUNNEL_METRICS": f"0.0.0.0:{METRICS_PORT}"},
        uploads=tuple(uploads),
        memory_mb=b.memory(128),
    )
    return ServiceSpec(
        name=b.name or "tunnel",
        kind=KIND,
        host=b.host,
        containers=(container,),
        metrics=(MetricsEndpoint("tunnel", "cloudflared", METRICS_PORT, "/metrics"),),
        restart=b.restart,
        title="Cloudflare Tunnel",
    )


@dataclass(frozen=True)
class CloudflareTunnelArgs:
    account_id: str
    zone_id: str
    api_token: pulumi.Input[str]
    name: str  # the tunnel's name in the account
    hostnames: tuple[str, ...]  # the public names, each a routed name of the tunnel's host
    # The public names whose certificate the stack CA signed: verified with it (caPool); the
    # others (ACME's, yours) with the system's roots.
    stack_ca_names: frozenset[str] = frozenset()


def ingress_rules(a: CloudflareTunnelArgs) -> list[dict]:
    """One rule per public name to the proxy, with the name as SNI (originServerName) and the
    proxy's certificate verified; the last rule, without a hostname, answers 404 (cloudflared
    requires a catch-all last rule: its ingress tests end with `http_status:404`)."""
    rules: list[dict] = []
    for fqdn in a.hostnames:
        origin: dict = {"origin_server_name": fqdn}
        if fqdn in a.stack_ca_names:
            origin["ca_pool"] = CA_FILE
        rules.append({"hostname": fqdn, "service": ORIGIN, "origin_request": origin})
    rules.append({"service": "http_status:404"})
    return rules


class CloudflareTunnel(pulumi.ComponentResource):
    """The tunnel, its ingress rules and a proxied CNAME per public name; `token` is what
    cloudflared runs with (a secret)."""

    token: pulumi.Output[str]

    def __init__(self, name: str, args: CloudflareTunnelArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("homelab:tunnel:CloudflareTunnel", name, None, opts)
        import pulumi_cloudflare as cloudflare
        import pulumi_random as random

        provider = cloudflare.Provider(
            f"{name}-api", api_token=args.api_token, opts=pulumi.ResourceOptions(parent=self)
        )
        opts_cf = pulumi.ResourceOptions(parent=self, provider=provider)
        # A remotely managed tunnel's secret: 32 random bytes, base64 ("at least 32 bytes and
        # encoded as a base64 string": the SDK's tunnel_secret).
        secret = random.RandomBytes(f"{name}-secret", length=32, opts=pulumi.ResourceOptions(parent=self))
        tunnel = cloudflare.ZeroTrustTunnelCloudflared(
            f"{name}-tunnel",
            account_id=args.account_id,
            name=args.name,
            config_src="cloudflare",
            tunnel_secret=secret.base64,
            opts=opts_cf,
        )
        cloudflare.ZeroTrustTunnelCloudflaredConfig(
            f"{name}-config",
            account_id=args.account_id,
            tunnel_id=tunnel.id,
            config=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigArgs(
                ingresses=[
                    cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(
                        hostname=rule.get("hostname"),
                        service=rule["service"],
                        origin_request=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequestArgs(
                            **rule["origin_request"]
                        )
                        if "origin_request" in rule
                        else None,
                    )
                    for rule in ingress_rules(args)
                ]
            ),
            opts=opts_cf,
        )
        for fqdn in args.hostnames:
            cloudflare.DnsRecord(
                f"{name}-dns-{fqdn}",
                zone_id=args.zone_id,
                name=fqdn,
                type="CNAME",
                content=tunnel.id.apply(lambda i: f"{i}.cfargotunnel.com"),
                proxied=True,
                ttl=1,  # "Setting to 1 means 'automatic'" (the SDK's DnsRecord ttl)
                comment="homelab tunnel (managed by Pulumi)",
                opts=opts_cf,
            )
        token = cloudflare.get_zero_trust_tunnel_cloudflared_token_output(
            account_id=args.account_id,
            tunnel_id=tunnel.id,
            opts=pulumi.InvokeOutputOptions(parent=self, provider=provider),
        )
        self.token = pulumi.Output.secret(token.token)
        self.register_outputs({"tunnel_id": tunnel.id})
