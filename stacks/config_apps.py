"""The `apps:` list: one build-and-deploy pipeline per application, on the platform layer."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from stacks.config_base import Label, Model, Port, SecretKey, Subdomain
from stacks.config_platform import _REPO, Quantity

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_REF = re.compile(r"[A-Za-z0-9._/-]{1,255}")  # fullmatch


def _ref(value: str) -> str:
    if not _REF.fullmatch(value) or ".." in value or value.startswith("/"):
        raise ValueError(f"{value!r} is not a git branch, tag or commit")
    return value


def _file_path(value: str) -> str:
    if not value.startswith("/") or value.endswith("/"):
        raise ValueError(f"{value!r} must be an absolute file path in the container")
    return value


class AppSource(Model):
    """Where the code is: an existing GitHub repository, or a new private one."""

    repository: Annotated[str, Field(pattern=_REPO)] | None = Field(
        default=None, description="Existing repository `owner/name` (adopted, not managed)."
    )
    create: bool = Field(default=False, description="Create a new private repository named after the app.")
    ref: Annotated[str, AfterValidator(_ref)] = Field(
        default="main", description="Branch, tag or commit to build."
    )

    @model_validator(mode="after")
    def _one(self) -> AppSource:
        if self.create == (self.repository is not None):
            raise ValueError("give either repository (adopt) or create: true")
        return self


class AppResources(Model):
    cpu_request: Quantity = "100m"
    memory_request: Quantity = "128Mi"
    cpu_limit: Quantity = "500m"
    memory_limit: Quantity = "256Mi"


class AppConfig(Model):
    """One application: source, Dockerfile, and how it runs."""

    name: Label = Field(description="App name (a DNS label): image, Deployment, Application.")
    project: Label = Field(description="The platform project it belongs to.")
    source: AppSource
    dockerfile: str | None = Field(
        default=None, description="Dockerfile path in the source (default Dockerfile)."
    )
    dockerfile_inline: str | None = Field(
        default=None, description="The Dockerfile itself, kept in the GitOps repo."
    )
    context: str = Field(default=".", description="Build context, relative to the repository root.")
    build_args: dict[str, str] = Field(default_factory=dict, description="--build-arg values.")
    port: Port = Field(default=8080, description="Container port.")
    replicas: Annotated[int, Field(ge=0, le=50)] = 1
    env: dict[Annotated[str, Field(pattern=_ENV_NAME)], str] = Field(default_factory=dict)
    secret_env: dict[Annotated[str, Field(pattern=_ENV_NAME)], SecretKey] = Field(
        default_factory=dict, description="Env name -> config key (secret); lands in a Kubernetes Secret."
    )
    files: dict[Annotated[str, AfterValidator(_file_path)], str] = Field(
        default_factory=dict, description="Files mounted into the container: path -> content."
    )
    resources: AppResources = Field(default_factory=AppResources)
    health_path: str = Field(
        default="/", pattern=r"^/[^\s\x00-\x1f\x7f]*$", description="HTTP path of the probes."
    )
    run_as_root: bool = Field(
        default=False, description="Allow the image to run as root (the policy pack must allowlist it)."
    )
    hostname: Subdomain | None = Field(
        default=None, description="Public name under the platform domain (default: the app name)."
    )

    @model_validator(mode="after")
    def _dockerfile(self) -> AppConfig:
        # Each file is a key of the app's ConfigMap: two paths with one key would both silently
        # get one content.
        from components.pipeline.manifests import file_key

        keys: dict[str, str] = {}
        for path in self.files:
            key = file_key(path)
            if key in keys:
                raise ValueError(f"files {keys[key]!r} and {path!r} would share one ConfigMap key ({key!r})")
            keys[key] = path
        if self.dockerfile is not None and self.dockerfile_inline is not None:
            raise ValueError("give dockerfile (a path) or dockerfile-inline, not both")
        if ".." in self.context.split("/") or self.context.startswith("/"):
            raise ValueError(f"context {self.context!r} must be a relative path inside the repository")
        return self

    @property
    def dockerfile_path(self) -> str:
        return self.dockerfile or "Dockerfile"


class NotificationsConfig(Model):
    webhook_url_secret: SecretKey | None = Field(
        default=None,
        description="Config key (secret) with the webhook URL Argo CD posts sync results to "
        "(e.g. a Mattermost incoming webhook).",
    )
