// Validates custom resources against the kubernetes-models schemas (types, enums, required
// fields, patterns, CEL-free): reads a JSON array of manifests on stdin, prints a JSON array
// with one error message (or null) per manifest. Used by tests/custom_resources.py.
const MODELS = {
  "gateway.networking.k8s.io/v1": "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1",
  "gateway.envoyproxy.io/v1alpha1": "@kubernetes-models/envoy-gateway/gateway.envoyproxy.io/v1alpha1",
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const doc of JSON.parse(input)) {
  const base = MODELS[doc.apiVersion];
  if (base === undefined) {
    results.push(`no model for ${doc.apiVersion}`);
    continue;
  }
  try {
    const module = await import(`${base}/${doc.kind}`);
    new module[doc.kind](doc).validate();
    results.push(null);
  } catch (error) {
    results.push(String(error.message ?? error));
  }
}
process.stdout.write(JSON.stringify(results));
