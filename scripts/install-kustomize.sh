#!/usr/bin/env bash
# Install kustomize (used by tests/unit/test_k8s.py to render k8s/overlays) from the Go module
# proxy: `go install sigs.k8s.io/kustomize/kustomize/v5@VERSION` into $(go env GOPATH)/bin
# (usually ~/go/bin). Idempotent: quick when that version is already there. Needs Go.
# Prints the path of the kustomize binary on success.
set -euo pipefail
version="${KUSTOMIZE_VERSION:-v5.4.3}"
module="sigs.k8s.io/kustomize/kustomize/v5"

go_bin="$(command -v go || true)"
if [ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ]; then
  go_bin=/usr/local/go/bin/go
fi
if [ -z "$go_bin" ]; then
  echo "install-kustomize: Go is not installed; kustomize tests will be skipped" >&2
  exit 1
fi

gobin="$("$go_bin" env GOBIN)"
if [ -z "$gobin" ]; then
  gobin="$("$go_bin" env GOPATH | cut -d: -f1)/bin"
fi
target="$gobin/kustomize"

# Already installed at this version? (`go version -m` reads the module version from the binary.)
if [ -x "$target" ] && "$go_bin" version -m "$target" 2>/dev/null \
    | awk -v m="$module" -v v="$version" '$1 == "mod" && $2 == m && $3 == v { found = 1 } END { exit !found }'; then
  echo "$target"
  exit 0
fi

echo "install-kustomize: installing kustomize $version into $gobin" >&2
GOFLAGS=-mod=mod "$go_bin" install "$module@$version"
"$go_bin" version -m "$target" | grep -q "$version" || {
  echo "install-kustomize: $target is not $version after install" >&2
  exit 1
}
echo "$target"
