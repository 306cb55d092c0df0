"""Remote access through Tailscale (issue 25): a node in the user's tailnet, run by the
official image's containerboot in userspace networking (its default: TS_USERSPACE, so no
NET_ADMIN and no /dev/net/tun), logged in once with a pre-authorized key the program makes
(pulumi-tailscale 0.29.2 TailnetKey), its state in a volume, optionally a subnet router for
LAN networks. Every setting is a containerboot variable (cmd/containerboot/main.go and
settings.go @ tailscale/tailscale v1.102.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.docker.spec import (
    Basics,
    ContainerSpec,
    MetricsEndpoint,
    ServiceSpec,
    Volume,
    http_check,
    secret_file,
)
from components.homelab.images import CONTRACTS

KIND = "TailscaleNode"
KEY_SECRET = "tailscale-authkey"
STATE = "/var/lib/tailscale"
LOCAL_PORT = 9002  # TS_LOCAL_ADDR_PORT's default port: /metrics and /healthz


def tailscale_node(b: Basics, hostname: str, routes: tuple[str, ...]) -> ServiceSpec:
    key = secret_file("tailscale-authkey", KEY_SECRET, owner=0)
    env = {
        # "If the value begins with "file:", it is treated as a path to a file containing the key."
        "TS_AUTHKEY": f"file:{key.path}",
        # Log in only when the state has no node yet: the key is used once, then the state.
        "TS_AUTH_ONCE": "true",
        "TS_STATE_DIR": STATE,
        "TS_USERSPACE": "true",
        "TS_HOSTNAME": hostname,
        "TS_ENABLE_HEALTH_CHECK": "true",
        "TS_ENABLE_METRICS": "true",
        "TS_LOCAL_ADDR_PORT": f"0.0.0.0:{LOCAL_PORT}",
    }
    if routes:
        env["TS_ROUTES"] = ",".join(routes)
    container = ContainerSpec(
        name="tailscale",
        image=b.image,
        privileges=CONTRACTS["tailscale"].privileges(),
        env=env,
        volumes=(Volume("tailscale-state", STATE),),
        uploads=(key,),
        # /healthz: 200 once the node has a tailnet address, else 503 (main.go).
        healthcheck=http_check(f"http://127.0.0.1:{LOCAL_PORT}/healthz"),
        memory_mb=b.memory(256),
    )
    return ServiceSpec(
        name=b.name or "tailscale",
        kind=KIND,
        host=b.host,
        containers=(container,),
        metrics=(MetricsEndpoint("tailscale", "tailscale", LOCAL_PORT, "/metrics"),),
        restart=b.restart,
        title="Tailscale",
    )


@dataclass(frozen=True)
class TailscaleKeyArgs:
    api_key: pulumi.Input[str]
    tailnet: str
    tags: tuple[str, ...]
    description: str = "homelab"  # "alphanumeric characters" (the SDK's TailnetKey description)


class TailscaleKey(pulumi.ComponentResource):
    """A single-use, pre-authorized, non-ephemeral auth key (the node keeps its state)."""

    key: pulumi.Output[str]

    def __init__(self, name: str, args: TailscaleKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("homelab:tunnel:TailscaleKey", name, None, opts)
        import pulumi_tailscale as tailscale

        provider = tailscale.Provider(
            f"{name}-api",
            api_key=args.api_key,
            tailnet=args.tailnet,
            opts=pulumi.ResourceOptions(parent=self),
        )
        key = tailscale.TailnetKey(
            f"{name}-key",
            reusable=False,
            ephemeral=False,
            preauthorized=True,
            tags=list(args.tags) or None,
            description=args.description,
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.key = pulumi.Output.secret(key.key)
        self.register_outputs({})
