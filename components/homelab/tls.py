"""TLS for the proxy: a self-signed CA and one certificate per routed host (pulumi-tls).

The combined PEM HAProxy loads (key, certificate, CA) is a Pulumi secret because it holds
the private key. A host the user brings their own PEM for gets no generated certificate.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls


@dataclass(frozen=True)
class CertificateAuthorityArgs:
    common_name: str
    hosts: tuple[str, ...]
    validity_days: int = 825
    organization: str = "homelab"


class CertificateAuthority(pulumi.ComponentResource):
    """A private CA and a server certificate for each host name it is given."""

    ca_cert_pem: pulumi.Output[str]
    ca_key_pem: pulumi.Output[str]
    pems: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: CertificateAuthorityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("homelab:tls:CertificateAuthority", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        hours = args.validity_days * 24
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="RSA", rsa_bits=2048, opts=child)
        ca_cert = tls.SelfSignedCert(
            f"{name}-ca-cert",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=hours,
            early_renewal_hours=24 * 30,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=args.common_name, organization=args.organization
            ),
            opts=child,
        )
        self.ca_cert_pem = ca_cert.cert_pem
        self.ca_key_pem = pulumi.Output.secret(ca_key.private_key_pem)
        self.pems = {}
        for fqdn in args.hosts:
            key = tls.PrivateKey(f"{name}-{fqdn}-key", algorithm="RSA", rsa_bits=2048, opts=child)
            request = tls.CertRequest(
                f"{name}-{fqdn}-csr",
                private_key_pem=key.private_key_pem,
                dns_names=[fqdn],
                subject=tls.CertRequestSubjectArgs(common_name=fqdn, organization=args.organization),
                opts=child,
            )
            cert = tls.LocallySignedCert(
                f"{name}-{fqdn}-cert",
                cert_request_pem=request.cert_request_pem,
                ca_private_key_pem=ca_key.private_key_pem,
                ca_cert_pem=ca_cert.cert_pem,
                validity_period_hours=hours,
                early_renewal_hours=24 * 30,
                allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
                opts=child,
            )
            combined = pulumi.Output.all(key.private_key_pem, cert.cert_pem, ca_cert.cert_pem).apply(
                lambda parts: "".join(p if p.endswith("\n") else p + "\n" for p in parts)
            )
            self.pems[fqdn] = pulumi.Output.secret(combined)
        self.register_outputs({"ca_cert_pem": self.ca_cert_pem})


def fallback_certificate(name: str, common_name: str, validity_days: int = 825) -> pulumi.Output[str]:
    """A self-signed certificate for a name no service has, as one combined secret PEM: what
    HAProxy serves to a client that asks for no routed host (components/homelab/proxy.py)."""
    key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256")
    cert = tls.SelfSignedCert(
        f"{name}-cert",
        private_key_pem=key.private_key_pem,
        validity_period_hours=validity_days * 24,
        early_renewal_hours=24 * 30,
        allowed_uses=["digital_signature", "server_auth"],
        dns_names=[common_name],
        subject=tls.SelfSignedCertSubjectArgs(common_name=common_name),
    )
    combined = pulumi.Output.all(key.private_key_pem, cert.cert_pem).apply(
        lambda parts: "".join(p if p.endswith("\n") else p + "\n" for p in parts)
    )
    return pulumi.Output.secret(combined)
