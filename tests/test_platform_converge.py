"""A first `up` that converges on a real cluster (issue 22), as far as the registered inputs
show it: custom resources Pulumi waits for, Secrets the operator re-reads, and no grant for a
feature the chart keeps off."""

from __future__ import annotations

from harness import ROOT, example_run

EXAMPLE = ROOT / "examples" / "platform.yaml"
CLUSTER_T = "kubernetes:postgresql.cnpg.io/v1:Cluster"
DATABASE_T = "kubernetes:postgresql.cnpg.io/v1:Database"
SECRET_T = "kubernetes:core/v1:Secret"
APPPROJECT_T = "kubernetes:argoproj.io/v1alpha1:AppProject"
RELEASE_T = "kubernetes:helm.sh/v3:Release"


def test_cloudnative_pg_resources_are_awaited_before_harbor_uses_them():
    platform = example_run(EXAMPLE)
    (cluster,) = platform.of_type(CLUSTER_T)
    # pulumi-kubernetes awaits a custom resource only with pulumi.com/waitFor (the Cluster's
    # Ready condition, the Database's status.applied), so Harbor no longer races the bootstrap.
    assert cluster.input("metadata.annotations")["pulumi.com/waitFor"] == "condition=Ready"
    (database,) = platform.of_type(DATABASE_T)
    assert database.input("metadata.annotations")["pulumi.com/waitFor"] == "jsonpath={.status.applied}=true"
    harbor = platform.named("harbor", RELEASE_T)
    assert database.urn in harbor.dependencies and cluster.urn in database.dependencies


def test_role_secrets_are_reloaded_by_the_operator_when_they_change():
    platform = example_run(EXAMPLE)
    (cluster,) = platform.of_type(CLUSTER_T)
    spec = cluster.inputs["spec"]
    names = {spec["bootstrap"]["initdb"]["secret"]["name"]}
    names |= {role["passwordSecret"]["name"] for role in spec["managed"]["roles"]}
    secrets = [s for s in platform.of_type(SECRET_T) if s.input("metadata.name") in names]
    assert len(secrets) == len(names) == 2
    for secret in secrets:
        assert secret.input("metadata.labels") == {"cnpg.io/reload": "true"}, secret.name


def test_no_argo_cd_project_role_is_granted_exec_while_the_chart_keeps_it_off():
    platform = example_run(EXAMPLE)
    values = platform.named("argocd", RELEASE_T).inputs["values"]
    assert values["configs"]["cm"].get("exec.enabled") in (None, False, "false")
    for project in platform.of_type(APPPROJECT_T):
        for role in project.inputs["spec"]["roles"]:
            for policy in role["policies"]:
                assert ", exec," not in policy, (project.name, policy)
