# tokenguard's container image: a static pdp binary on distroless, as a
# non-root user, with its state in the /data volume.
#
#   docker build -t tokenguard .
#   docker run -p 8181:8181 -v pdp-data:/data -v ./pdp.yaml:/etc/pdp/pdp.yaml:ro tokenguard --config /etc/pdp/pdp.yaml
#
# The build flags are the ones TestDockerfile reads and the integration test
# (go test -tags integration -run Dockerfile ./cmd/pdp) builds with.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/pdp ./cmd/pdp
# The policies the image serves by default (policy.dir), and the empty
# state directory, owned by the non-root user.
RUN mkdir -p /out/data && cp -r rego /out/rego

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pdp /usr/local/bin/pdp
COPY --from=build --chown=65532:65532 /out/rego /etc/pdp/rego
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV PDP_LISTEN=0.0.0.0:8181 \
    PDP_DATA_DIR=/data \
    PDP_POLICY_DIR=/etc/pdp/rego
VOLUME ["/data"]
EXPOSE 8181
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/pdp", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/pdp", "serve"]
