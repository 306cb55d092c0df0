"""Images the pipeline runs in the cluster: pinned, each with its contract.

The upstream kaniko repository (GoogleContainerTools) was archived in June 2025. We pin the
community fork osscontainertools/kaniko, which continues its releases on ghcr.io with the
same executor flags.
"""

from components.contracts import ImageContract

# kubernetes/git-sync: newest patch of the v4.5 line is tag v4.5.1 (tags v4.5.0, v4.5.1, then
# v4.6.0); releases are promoted to registry.k8s.io/git-sync/git-sync (RELEASING.md @ v4.5.1).
GIT_SYNC_CONTRACT = ImageContract(
    image="registry.k8s.io/git-sync/git-sync:v4.5.1",
    user="65533:65533",
    shell="/bin/sh",
    binaries=("/git-sync", "cp"),  # cp: from PATH
    config_paths=("/etc/git-secret/ssh", "/etc/git-secret/known_hosts"),
    file_envs=(),
    verified={
        "tag": "kubernetes/git-sync tag v4.5.1; RELEASING.md "
        "(prod location registry.k8s.io/git-sync/git-sync)",
        "user": "kubernetes/git-sync Dockerfile.in @ v4.5.1: `USER 65533:65533`",
        "shell": "kubernetes/git-sync Dockerfile.in @ v4.5.1: stages bash, `ln -s bash /bin/sh`",
        "/git-sync": "kubernetes/git-sync Dockerfile.in @ v4.5.1: ENTRYPOINT /{ARG_BIN}, "
        "Makefile BIN := git-sync",
        "cp": "kubernetes/git-sync Dockerfile.in @ v4.5.1: stage_binaries.sh -p coreutils",
        "flags": "kubernetes/git-sync main.go @ v4.5.1: --repo --ref --root --link --one-time --depth "
        "--ssh-key-file --ssh-known-hosts --ssh-known-hosts-file",
        "link is a symlink": "kubernetes/git-sync README.md @ v4.5.1: 'git-sync does not currently have a "
        "no-symlink mode'",
    },
)

# osscontainertools/kaniko: newest tag v1.28.3 (no v1.28.4 exists); the release workflow tags the
# executor image ghcr.io/osscontainertools/kaniko:<tag> (.github/workflows/images.yaml @ v1.28.3).
KANIKO_CONTRACT = ImageContract(
    image="ghcr.io/osscontainertools/kaniko:v1.28.3",
    user="0",
    shell=None,
    binaries=("/kaniko/executor",),
    config_paths=("/kaniko/.docker/config.json",),
    file_envs=(),
    env={"DOCKER_CONFIG": "/kaniko/.docker/", "SSL_CERT_DIR": "/kaniko/ssl/certs"},
    verified={
        "tag": "osscontainertools/kaniko tag v1.28.3; .github/workflows/images.yaml (executor -> :<tag>)",
        "user": "osscontainertools/kaniko deploy/Dockerfile @ v1.28.3: no USER, `ENV USER=root`",
        "shell": "osscontainertools/kaniko deploy/Dockerfile @ v1.28.3: kaniko-executor is FROM scratch "
        "without busybox (only the -debug image has /busybox/sh)",
        "/kaniko/executor": "osscontainertools/kaniko deploy/Dockerfile @ v1.28.3: ENTRYPOINT",
        "DOCKER_CONFIG": "osscontainertools/kaniko deploy/Dockerfile @ v1.28.3: "
        "ENV DOCKER_CONFIG=/kaniko/.docker/",
        "flags": "osscontainertools/kaniko cmd/executor/cmd/root.go @ v1.28.3: --context --dockerfile "
        "--destination --cache --cache-repo --snapshot-mode --build-arg --registry-certificate",
    },
)

GIT_SYNC = GIT_SYNC_CONTRACT.image
KANIKO = KANIKO_CONTRACT.image
CONTRACTS = {"git-sync": GIT_SYNC_CONTRACT, "kaniko": KANIKO_CONTRACT}

# GitHub's published SSH host key (ed25519), so git-sync verifies whom it talks to.
GITHUB_KNOWN_HOSTS = (
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
)
