# syntax=docker/dockerfile:1
# backupguard: a static binary on a distroless, non-root base, for linux/amd64 and linux/arm64.
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=v0.1.0 \
#     -t ghcr.io/backupguard/backupguard:v0.1.0 .
# (`make image` runs that; `make test` proves both architectures compile, since no container engine
# runs there.)
#
# Both base images are pinned by digest so that a rebuild of a tag, and its signature and SBOM, describe
# the same inputs. The digests were not pulled from the registries here (no engine runs where this was
# written): each is the one public Dockerfiles pin for the same tag, the multi-platform index digest that
# `crane digest` prints (the distroless one, as of 2026-08; the golang one, 2026). Check and refresh them
# before a release:
#   crane digest golang:1.26
#   crane digest gcr.io/distroless/static-debian12:nonroot

# The builder runs on the machine doing the build, whatever the target: Go cross-compiles without cgo,
# and compiling under QEMU emulation is ten or more times slower.
FROM --platform=$BUILDPLATFORM golang:1.26@sha256:3aff6657219a4d9c14e27fb1d8976c49c29fddb70ba835014f477e1c70636647 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Set by BuildKit from --platform; a plain `docker build` sets them to the builder's own platform.
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/backupguard ./cmd/backupguard

FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
COPY --from=build /out/backupguard /usr/local/bin/backupguard
COPY LICENSE /usr/share/doc/backupguard/LICENSE
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/backupguard"]
