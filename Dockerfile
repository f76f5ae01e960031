# syntax=docker/dockerfile:1
# The same image `make image` builds here without any base image (internal/image): the static
# binary, a CA bundle, a passwd entry for uid 65532 and the trust and temp directories on an empty
# base. internal/image's TestDockerfileMatches keeps the two in step.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# GO_TAGS=gcs links the blob store's Google Cloud Storage driver (about 27 MB more).
ARG GO_TAGS=""
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -tags "$GO_TAGS" -ldflags "-s -w" -o /out/trustgate-linux ./cmd/trustgate
RUN go run ./internal/image/mkimage --binary /out/trustgate-linux --rootfs /out/image

FROM scratch
COPY --from=build /out/image/rootfs/ /
# COPY keeps no ownership: the trust dir, which the user owns, comes apart, as a new entry.
COPY --from=build --chown=65532:65532 /out/image/owned/var/lib/trustgate/ /var/lib/trustgate/
USER 65532:65532
WORKDIR /var/lib/trustgate
ENV TRUSTGATE_LISTEN=0.0.0.0:5000 TRUSTGATE_METRICS_LISTEN=0.0.0.0:9090 TRUSTGATE_TRUST_DIR=/var/lib/trustgate/trust TMPDIR=/tmp
VOLUME /var/lib/trustgate
EXPOSE 5000 9090
ENTRYPOINT ["/trustgate"]
CMD ["serve", "--config", "/etc/trustgate/trustgate.yaml"]
