"""One app's pipeline, as resources and dependencies instead of webhooks at run time:

source repository (adopted or created private) + read-only deploy key
  -> build Job (git-sync at the ref, kaniko pushing to Harbor with the push robot)
  -> manifest files committed to the GitOps repository (they wait for the Job)
  -> Argo CD Application syncing them into the project namespace.

The Job's name and the image tag carry a hash of (source, ref, Dockerfile, build args): an
unchanged app does not rebuild, a changed one builds once and is redeployed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_github as github
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.pipeline.images import GITHUB_KNOWN_HOSTS
from components.pipeline.manifests import (
    AppSpec,
    BuildSpec,
    Resources,
    app_manifests,
    application,
    build_job,
    build_timeout,
    image_ref,
    to_yaml,
)
from components.platform.cluster import custom_resource
from components.platform.routing import Route


@dataclass(frozen=True)
class SourceArgs:
    owner: str
    repository: str
    ref: str
    create: bool

    @property
    def ssh_url(self) -> str:
        return f"git@github.com:{self.owner}/{self.repository}.git"


@dataclass(frozen=True)
class GitOpsTarget:
    repository: pulumi.Input[str]  # the GitOps repository's name on GitHub
    url: str  # its SSH URL, as Argo CD knows it
    branch: str
    argocd_namespace: str


@dataclass(frozen=True)
class AppPipelineArgs:
    name: str
    project: str
    source: SourceArgs
    host: str
    registry_host: str
    gitops: GitOpsTarget
    dockerfile_path: str = "Dockerfile"
    dockerfile_inline: str | None = None
    context: str = "."
    build_args: dict[str, str] = field(default_factory=dict)
    port: int = 8080
    replicas: int = 1
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    health_path: str = "/"
    cluster_issuer: str = "homelab-ca"
    route: Route | None = None
    notifier: str | None = None
    run_as_root: bool = False
    registry_ca_configmap: str | None = None

    def build_spec(self) -> BuildSpec:
        return BuildSpec(
            app=self.name,
            project=self.project,
            repo_ssh_url=self.source.ssh_url,
            ref=self.source.ref,
            dockerfile_path=self.dockerfile_path,
            dockerfile_inline=self.dockerfile_inline,
            context=self.context,
            build_args=dict(self.build_args),
        )


class AppPipeline(pulumi.ComponentResource):
    image: str
    url: str
    application_name: str

    def __init__(
        self,
        name: str,
        args: AppPipelineArgs,
        k8s_provider: k8s.Provider,
        github_provider: github.Provider,
        needs: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
        source_github: github.Provider | None = None,
        deploy_after: list[pulumi.Resource] | None = None,
    ):
        """`needs`: what must exist first (project namespace, registry secrets, AppProject).
        `source_github`: the provider of the source repository's owner (default: the GitOps one).
        `deploy_after`: what the nodes need before they pull the image (the registry's CA)."""
        super().__init__("homelab:pipeline:AppPipeline", name, None, opts)
        gh = pulumi.ResourceOptions(parent=self, provider=github_provider)
        src = pulumi.ResourceOptions(parent=self, provider=source_github or github_provider)
        kube = pulumi.ResourceOptions(parent=self, provider=k8s_provider, depends_on=needs)
        build = args.build_spec()
        self.image = image_ref(args.registry_host, build)
        self.url = f"https://{args.host}/"

        # Source repository and the build's read-only access to it.
        source_name: pulumi.Input[str] = args.source.repository
        if args.source.create:
            repo = github.Repository(
                f"{name}-source",
                name=args.source.repository,
                description=f"Source of {args.project}/{args.name} (managed by Pulumi)",
                visibility="private",
                auto_init=True,
                archive_on_destroy=True,
                opts=src,
            )
            source_name = repo.name
            if args.dockerfile_inline is not None:
                github.RepositoryFile(
                    f"{name}-source-dockerfile",
                    repository=repo.name,
                    file="Dockerfile",
                    content=args.dockerfile_inline,
                    commit_message=f"Add the Dockerfile of {args.name}",
                    overwrite_on_create=False,
                    opts=src,
                )
        key = tls.PrivateKey(
            f"{name}-deploy-key", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self)
        )
        deploy_key = github.RepositoryDeployKey(
            f"{name}-deploy-key",
            repository=source_name,
            title=f"build of {args.project}/{args.name} (read-only, managed by Pulumi)",
            key=key.public_key_openssh,
            read_only=True,
            opts=src,
        )
        git_secret = k8s.core.v1.Secret(
            f"{name}-git",
            metadata={"name": f"{args.name}-git", "namespace": args.project},
            type="Opaque",
            string_data={"ssh": key.private_key_openssh, "known_hosts": GITHUB_KNOWN_HOSTS},
            opts=kube,
        )

        build_inputs: list[pulumi.Resource] = [git_secret, deploy_key]
        dockerfile_configmap = None
        if args.dockerfile_inline is not None:
            # Kept in the GitOps repository for review, and mounted into the build.
            github.RepositoryFile(
                f"{name}-dockerfile",
                repository=args.gitops.repository,
                branch=args.gitops.branch,
                file=f"dockerfiles/{args.project}/{args.name}/Dockerfile",
                content=args.dockerfile_inline,
                commit_message=f"Dockerfile of {args.project}/{args.name}",
                overwrite_on_create=True,
                opts=gh,
            )
            dockerfile_configmap = f"dockerfile-{args.name}-{build.tag}"
            build_inputs.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-dockerfile",
                    metadata={"name": dockerfile_configmap, "namespace": args.project},
                    data={"Dockerfile": args.dockerfile_inline},
                    opts=kube,
                )
            )

        if args.secret_env:
            build_inputs.append(
                k8s.core.v1.Secret(
                    f"{name}-env",
                    metadata={"name": f"{args.name}-env", "namespace": args.project},
                    type="Opaque",
                    string_data={k: pulumi.Output.secret(v) for k, v in sorted(args.secret_env.items())},
                    opts=kube,
                )
            )

        job = build_job(
            build, args.registry_host, f"{args.name}-git", dockerfile_configmap, args.registry_ca_configmap
        )
        # Pulumi waits for a Job to complete: what depends on it waits for the image. Its wait
        # (10 minutes by default) must outlast the Job's own deadline.
        timeout = build_timeout(job["spec"]["activeDeadlineSeconds"])
        self.job = k8s.batch.v1.Job(
            f"{name}-build",
            metadata=job["metadata"],
            spec=job["spec"],
            opts=pulumi.ResourceOptions.merge(
                kube,
                pulumi.ResourceOptions(
                    depends_on=[*needs, *build_inputs],
                    delete_before_replace=True,
                    custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
                ),
            ),
        )

        spec = AppSpec(
            name=args.name,
            project=args.project,
            image=self.image,
            host=args.host,
            port=args.port,
            replicas=args.replicas,
            env=dict(args.env),
            secret_env=tuple(sorted(args.secret_env)),
            files=dict(args.files),
            resources=args.resources,
            health_path=args.health_path,
            cluster_issuer=args.cluster_issuer,
            route=args.route,
            run_as_root=args.run_as_root,
        )
        self.files: dict[str, github.RepositoryFile] = {}
        for file_name, manifest in app_manifests(spec).items():
            path = f"apps/{args.project}/{args.name}/{file_name}"
            self.files[path] = github.RepositoryFile(
                f"{name}-{file_name.removesuffix('.yaml')}",
                repository=args.gitops.repository,
                branch=args.gitops.branch,
                file=path,
                content=to_yaml(manifest),
                commit_message=f"Deploy {args.project}/{args.name} {build.tag}",
                overwrite_on_create=True,
                # The commit that names a new tag waits for the build that pushes it, and for the
                # nodes to trust the registry it is pulled from.
                opts=pulumi.ResourceOptions.merge(
                    gh, pulumi.ResourceOptions(depends_on=[self.job, *(deploy_after or [])])
                ),
            )

        app = application(
            args.name,
            args.project,
            args.gitops.argocd_namespace,
            args.gitops.url,
            args.gitops.branch,
            args.notifier,
        )
        self.application_name = app["metadata"]["name"]
        custom_resource(
            f"{name}-application",
            app,
            pulumi.ResourceOptions(
                parent=self, provider=k8s_provider, depends_on=[*needs, *self.files.values()]
            ),
        )
        self.register_outputs({"image": self.image, "url": self.url, "application": self.application_name})
