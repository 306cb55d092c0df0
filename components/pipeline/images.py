"""Images the pipeline runs in the cluster: pinned, each with its contract.

The upstream kaniko repository (GoogleContainerTools) was archived in June 2025. We pin the
community fork osscontainertools/kaniko, which continues its releases on ghcr.io with the
same executor flags.
"""

from components.contracts import ClusterImageContract, Fact, Seen, User
from components.lifecycle import Product, Window

_GIT_SYNC = "kubernetes/git-sync"
_GIT_SYNC_DOCKERFILE = Seen(_GIT_SYNC, "Dockerfile.in", "v4.5.1")
_KANIKO = "osscontainertools/kaniko"
_KANIKO_DOCKERFILE = Seen(_KANIKO, "deploy/Dockerfile", "v1.28.3")

# Newest patch of the v4.5 line: tags v4.5.0, v4.5.1, then v4.6.0. Releases are promoted to
# registry.k8s.io/git-sync/git-sync (RELEASING.md).
GIT_SYNC_CONTRACT = ClusterImageContract(
    image="registry.k8s.io/git-sync/git-sync:v4.5.1",
    tag=Seen(_GIT_SYNC, "RELEASING.md", "v4.5.1"),
    # RUN echo "git-sync:x:65533:65533::/tmp:/sbin/nologin" >> /etc/passwd ... USER 65533:65533
    user=Fact(User("git-sync", 65533), _GIT_SYNC_DOCKERFILE),
    # stage_binaries.sh -p bash ...; RUN ln -s bash {ARG_STAGING}/bin/sh
    shell=Fact(True, _GIT_SYNC_DOCKERFILE),
    runs=(
        # ENTRYPOINT ["/{ARG_BIN}"], BIN := git-sync (Makefile); the flags the build passes:
        # --repo --ref --root --link --one-time --depth --ssh-key-file --ssh-known-hosts(-file)
        Fact("/git-sync", Seen(_GIT_SYNC, "main.go", "v4.5.1")),
        # stage_binaries.sh -p coreutils
        Fact("cp", _GIT_SYNC_DOCKERFILE),
    ),
    # the defaults of --ssh-key-file and --ssh-known-hosts-file
    reads=(
        Fact("/etc/git-secret/ssh", Seen(_GIT_SYNC, "main.go", "v4.5.1")),
        Fact("/etc/git-secret/known_hosts", Seen(_GIT_SYNC, "main.go", "v4.5.1")),
    ),
)

# Newest tag v1.28.3 (no v1.28.4 exists); the release workflow tags the executor image
# ghcr.io/osscontainertools/kaniko:<tag> (.github/workflows/images.yaml).
KANIKO_CONTRACT = ClusterImageContract(
    image="ghcr.io/osscontainertools/kaniko:v1.28.3",
    tag=Seen(_KANIKO, ".github/workflows/images.yaml", "v1.28.3"),
    # no USER; ENV USER=root
    user=Fact(User("root", 0), _KANIKO_DOCKERFILE),
    # kaniko-executor: FROM scratch without busybox (only the -debug image has /busybox/sh)
    shell=Fact(False, _KANIKO_DOCKERFILE),
    runs=(
        # ENTRYPOINT ["/kaniko/executor"]; flags --context --dockerfile --destination --cache
        # --cache-repo --snapshot-mode --build-arg --registry-certificate (cmd/executor/cmd/root.go)
        Fact("/kaniko/executor", _KANIKO_DOCKERFILE),
    ),
    reads=(Fact("/kaniko/.docker/config.json", _KANIKO_DOCKERFILE),),
    env=(Fact("DOCKER_CONFIG=/kaniko/.docker/", _KANIKO_DOCKERFILE),),
)

GIT_SYNC = GIT_SYNC_CONTRACT.image
KANIKO = KANIKO_CONTRACT.image
CONTRACTS = {"git-sync": GIT_SYNC_CONTRACT, "kaniko": KANIKO_CONTRACT}

# Support windows (issue 21): neither project publishes one. The base images of the example
# apps' Dockerfiles (nginx-unprivileged) are nginx's, in components/homelab/images.py.
SUPPORT: dict[str, Product] = {
    "git-sync": Product(
        name="git-sync",
        policy="No support window is published (kubernetes/git-sync has no version policy).",
        windows=(
            Window(
                "4.5",
                None,
                Seen(_GIT_SYNC, "SECURITY.md", "61520d8a95b0"),
                "v4.5.1",
                "no end published; v4.7.1 is the newest v4 release",
            ),
        ),
        names=("registry.k8s.io/git-sync/git-sync",),
    ),
    "kaniko": Product(
        name="kaniko",
        policy="No support window is published; the fork calls itself the 'supported replacement' "
        "of the archived upstream (osscontainertools/kaniko README.md @ dca70b95a86a).",
        windows=(
            Window("1.28", None, Seen(_KANIKO, "README.md", "dca70b95a86a"), "v1.28.3", "no end published"),
        ),
        names=("ghcr.io/osscontainertools/kaniko",),
    ),
}

# GitHub's published SSH host key (ed25519), so git-sync verifies whom it talks to.
GITHUB_KNOWN_HOSTS = (
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
)
