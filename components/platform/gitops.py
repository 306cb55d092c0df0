"""The GitOps repository: a private GitHub repository Argo CD reads with a read-only deploy
key (no personal token), registered in Argo CD by a declarative repository Secret, with a
push webhook to Argo CD authenticated by a generated secret."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_github as github
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.platform.cluster import KubernetesCluster


@dataclass(frozen=True)
class GitOpsArgs:
    owner: str
    repository: str
    branch: str
    create: bool
    argocd_namespace: str
    argocd_url: str
    webhook_secret: pulumi.Input[str]

    @property
    def ssh_url(self) -> str:
        return f"git@github.com:{self.owner}/{self.repository}.git"


class GitOpsRepository(pulumi.ComponentResource):
    repository_name: pulumi.Output[str]
    url: str

    def __init__(
        self,
        name: str,
        args: GitOpsArgs,
        cluster: KubernetesCluster,
        github_provider: github.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("homelab:platform:GitOpsRepository", name, None, opts)
        gh = pulumi.ResourceOptions(parent=self, provider=github_provider)
        self.url = args.ssh_url
        if args.create:
            repo = github.Repository(
                f"{name}-repository",
                name=args.repository,
                description="GitOps repository: the desired state Argo CD syncs (managed by Pulumi).",
                visibility="private",
                auto_init=True,
                has_issues=False,
                has_wiki=False,
                delete_branch_on_merge=True,
                archive_on_destroy=True,
                opts=pulumi.ResourceOptions.merge(gh, pulumi.ResourceOptions(protect=True)),
            )
            self.repository_name = repo.name
            node_id: pulumi.Input[str] = repo.node_id
        else:
            existing = github.get_repository_output(
                full_name=f"{args.owner}/{args.repository}",
                opts=pulumi.InvokeOptions(provider=github_provider),
            )
            self.repository_name = pulumi.Output.from_input(args.repository)
            node_id = existing.node_id
        github.BranchProtection(
            f"{name}-branch-protection",
            repository_id=node_id,
            pattern=args.branch,
            allows_deletions=False,
            allows_force_pushes=False,
            required_linear_history=True,
            opts=gh,
        )

        key = tls.PrivateKey(
            f"{name}-deploy-key", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self)
        )
        github.RepositoryDeployKey(
            f"{name}-deploy-key",
            repository=self.repository_name,
            title="argocd (read-only, managed by Pulumi)",
            key=key.public_key_openssh,
            read_only=True,
            opts=gh,
        )
        self.secret = k8s.core.v1.Secret(
            f"{name}-argocd-repository",
            metadata={
                "name": "gitops-repository",
                "namespace": args.argocd_namespace,
                "labels": {"argocd.argoproj.io/secret-type": "repository"},
            },
            type="Opaque",
            string_data={
                "type": "git",
                "name": "gitops",
                "url": args.ssh_url,
                "sshPrivateKey": key.private_key_openssh,  # a secret output of tls.PrivateKey
            },
            # In the platform namespace: wait for it on the first run.
            opts=cluster.opts(parent=self, depends_on=[cluster.namespace]),
        )
        github.RepositoryWebhook(
            f"{name}-argocd-webhook",
            repository=self.repository_name,
            events=["push"],
            active=True,
            configuration=github.RepositoryWebhookConfigurationArgs(
                url=f"{args.argocd_url}/api/webhook",
                content_type="json",
                secret=pulumi.Output.secret(args.webhook_secret),
                insecure_ssl=False,
            ),
            opts=gh,
        )
        self._gh = gh
        self.register_outputs({"url": self.url})

    def grant(self, permissions: dict[str, str]) -> None:
        """Make each login a collaborator with its permission (pull, push, maintain)."""
        for login, permission in sorted(permissions.items()):
            github.RepositoryCollaborator(
                f"gitops-collaborator-{login.lower()}",
                repository=self.repository_name,
                username=login,
                permission=permission,
                opts=self._gh,
            )
