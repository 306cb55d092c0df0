"""App pipelines: source repository, registry robots, in-cluster build, GitOps deployment."""
