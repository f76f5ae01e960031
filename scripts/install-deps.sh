#!/usr/bin/env bash
# Installs the real peers the test suite runs against, pinned to the versions the tests expect.
# Idempotent: a tool already at the right version is not rebuilt.
set -euo pipefail
GOBIN="${GOBIN:-$(go env GOPATH)/bin}"
export GOBIN
mkdir -p "$GOBIN"

need_go() { # name module@version
  local bin=$1 mod=$2
  local stamp="$GOBIN/.trustgate-$bin-$(echo "$mod" | tr '/@' '__')"
  if [ -x "$GOBIN/$bin" ] && [ -f "$stamp" ]; then return 0; fi
  echo "install-deps: go install $mod"
  go install "$mod"
  touch "$stamp"
}

# need_go_as installs module@version's command under another name (two cosign majors side by side).
need_go_as() { # name module@version
  local bin=$1 mod=$2
  local stamp="$GOBIN/.trustgate-$bin-$(echo "$mod" | tr '/@' '__')"
  if [ -x "$GOBIN/$bin" ] && [ -f "$stamp" ]; then return 0; fi
  echo "install-deps: go install $mod as $bin"
  local tmp
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install "$mod"
  mv "$tmp/$(basename "${mod%@*}")" "$GOBIN/$bin"
  rm -rf "$tmp"
  touch "$stamp"
}

# need_go_build builds a command the module proxy will not `go install` directly (notation: the proxy
# refuses the module's version list) from a scratch module that requires it at the pinned version.
need_go_build() { # name module version package
  local bin=$1 mod=$2 ver=$3 pkg=$4
  local stamp="$GOBIN/.trustgate-$bin-$(echo "$mod@$ver" | tr '/@' '__')"
  if [ -x "$GOBIN/$bin" ] && [ -f "$stamp" ]; then return 0; fi
  echo "install-deps: go build $pkg@$ver"
  local tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    go mod init trustgate.invalid/tools >/dev/null 2>&1
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >tools.go
    go get "$mod@$ver" >/dev/null
    go mod tidy >/dev/null 2>&1 || true
    go build -trimpath -o "$GOBIN/$bin" "$pkg"
  )
  rm -rf "$tmp"
  touch "$stamp"
}

need_go registry      github.com/distribution/distribution/v3/cmd/registry@v3.1.2
need_go notary-server github.com/theupdateframework/notary/cmd/notary-server@v0.7.0
need_go notary        github.com/theupdateframework/notary/cmd/notary@v0.7.0
need_go crane         github.com/google/go-containerregistry/cmd/crane@v0.22.1
need_go helm          helm.sh/helm/v4/cmd/helm@v4.3.2
need_go staticcheck   honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Signing CLIs for the cosign and Notation e2e tests (each takes minutes to build; the stamps cache them).
need_go_as cosign     github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3
need_go_as cosign2    github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
need_go_build notation github.com/notaryproject/notation v1.3.2 github.com/notaryproject/notation/cmd/notation
# An S3 server (posix backend, Apache-2.0) for the shared blob store's tests.
need_go versitygw     github.com/versity/versitygw/cmd/versitygw@v1.8.0

# docker.io brings dockerd, the docker CLI (/usr/bin/docker) and containerd (+ ctr, runc); the e2e
# tests run dockerd and containerd themselves, so both daemons' binaries must be present.
if ! command -v skopeo >/dev/null || ! command -v dockerd >/dev/null || ! command -v containerd >/dev/null ||
  ! command -v ctr >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "install-deps: apt-get install skopeo docker.io containerd"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo docker.io containerd >/dev/null
  else
    echo "install-deps: skopeo/dockerd/containerd missing and not root; install skopeo, docker.io and containerd" >&2
    exit 1
  fi
fi
# redis-server is the shared trust store the replica tests (e2e/replicas_test.go, resolver's Redis
# store tests) run against; Debian's package, as for skopeo. The tests start their own instances.
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "install-deps: apt-get install redis-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "install-deps: redis-server missing and not root; install redis-server" >&2
    exit 1
  fi
fi
echo "install-deps: ok ($GOBIN)"
