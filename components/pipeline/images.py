"""Images the pipeline runs in the cluster, pinned.

The upstream kaniko repository (GoogleContainerTools) was archived in June 2025. We pin the
community fork osscontainertools/kaniko, which continues its releases on ghcr.io with the
same executor flags.
"""

GIT_SYNC = "registry.k8s.io/git-sync/git-sync:v4.5.0"
KANIKO = "ghcr.io/osscontainertools/kaniko:v1.28.4"

# GitHub's published SSH host key (ed25519), so git-sync verifies whom it talks to.
GITHUB_KNOWN_HOSTS = (
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
)
