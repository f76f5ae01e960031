# syntax=docker/dockerfile:1
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/trustgate ./cmd/trustgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/trustgate /trustgate
COPY configs/trustgate.yaml /etc/trustgate/trustgate.yaml
VOLUME /var/lib/trustgate
ENV TRUSTGATE_LISTEN=0.0.0.0:5000 TRUSTGATE_TRUST_DIR=/var/lib/trustgate/trust
EXPOSE 5000
ENTRYPOINT ["/trustgate", "serve", "--config", "/etc/trustgate/trustgate.yaml"]
