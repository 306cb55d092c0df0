"""The apps layer: one pipeline per app, on top of the platform layer's cluster, registry,
GitOps repository and projects."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_github as github

from components.pipeline.manifests import Resources
from components.pipeline.pipeline import AppPipeline, AppPipelineArgs, GitOpsTarget, SourceArgs
from components.pipeline.registry import REGISTRY_CA_CONFIGMAP, ProjectRegistry, RegistryArgs
from components.platform.argocd import NOTIFIER
from stacks.config import StackConfig, app_fqdn
from stacks.platform import Platform


@dataclass
class AppsSecrets:
    github_token: pulumi.Output[str] | None = None
    # app index -> env name -> value (from the config secrets the app names)
    secret_env: dict[int, dict[str, pulumi.Output[str]]] = field(default_factory=dict)


@dataclass
class Apps:
    pipelines: dict[str, AppPipeline] = field(default_factory=dict)
    registries: dict[str, ProjectRegistry] = field(default_factory=dict)


def build_apps(config: StackConfig, platform: Platform, secrets: AppsSecrets) -> Apps:
    p = config.platform
    assert p is not None and platform.harbor is not None and platform.gitops is not None
    assert platform.argocd is not None and platform.github is not None
    out = Apps()
    k8s_opts = pulumi.ResourceOptions(provider=platform.cluster.provider)
    for project in sorted({app.project for app in config.apps}):
        access = platform.projects[project]
        out.registries[project] = ProjectRegistry(
            f"registry-{project}",
            RegistryArgs(project, platform.harbor.registry_host, access.namespace, platform.ca_cert_pem),
            platform.harbor.provider,
            k8s_opts,
            opts=pulumi.ResourceOptions(
                depends_on=[access.harbor_project] if access.harbor_project else None
            ),
        )
    gitops = GitOpsTarget(
        repository=platform.gitops.repository_name,
        url=platform.gitops.url,
        branch=p.gitops.branch,
        argocd_namespace=p.namespace,
    )
    notifier = NOTIFIER if config.notifications.webhook_url_secret else None
    # Repositories of other owners (adopted sources) get a provider of their own.
    providers = {p.github_owner: platform.github}

    def github_for(owner: str) -> github.Provider:
        if owner not in providers:
            providers[owner] = github.Provider(f"github-{owner}", owner=owner, token=secrets.github_token)
        return providers[owner]

    for i, app in enumerate(config.apps):
        access = platform.projects[app.project]
        needs: list[pulumi.Resource] = [access.namespace, *out.registries[app.project].ready]
        if access.app_project is not None:
            needs.append(access.app_project)
        owner, repository = (
            app.source.repository.split("/", 1) if app.source.repository else (p.github_owner, app.name)
        )
        r = app.resources
        out.pipelines[f"{app.project}/{app.name}"] = AppPipeline(
            f"app-{app.project}-{app.name}",
            AppPipelineArgs(
                name=app.name,
                project=app.project,
                source=SourceArgs(owner, repository, app.source.ref, app.source.create),
                host=app_fqdn(config, app),
                registry_host=platform.harbor.registry_host,
                gitops=gitops,
                dockerfile_path=app.dockerfile_path,
                dockerfile_inline=app.dockerfile_inline,
                context=app.context,
                build_args=dict(app.build_args),
                port=app.port,
                replicas=app.replicas,
                env=dict(app.env),
                secret_env=dict(secrets.secret_env.get(i, {})),
                files=dict(app.files),
                resources=Resources(r.cpu_request, r.memory_request, r.cpu_limit, r.memory_limit),
                health_path=app.health_path,
                cluster_issuer=p.cluster_issuer,
                route=platform.routes[f"app:{app.project}/{app.name}"],
                notifier=notifier,
                run_as_root=app.run_as_root,
                registry_ca_configmap=REGISTRY_CA_CONFIGMAP if platform.ca_cert_pem is not None else None,
            ),
            platform.cluster.provider,
            platform.github,
            needs,
            source_github=github_for(owner),
            deploy_after=platform.node_trust,
        )
    return out


def export_apps(apps: Apps) -> None:
    pulumi.export(
        "apps",
        {
            key: {"image": pipeline.image, "url": pipeline.url, "application": pipeline.application_name}
            for key, pipeline in apps.pipelines.items()
        },
    )
