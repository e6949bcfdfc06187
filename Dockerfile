# backupguard: a static binary on a distroless, non-root base.
#   docker build --build-arg VERSION=v0.1.0 -t ghcr.io/backupguard/backupguard:v0.1.0 .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/backupguard ./cmd/backupguard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/backupguard /usr/local/bin/backupguard
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/backupguard"]
