# Flax image: both binaries (flax-controller and flax-dataplane) in one image, since the
# chart runs them as two containers of one DaemonSet pod and they must be upgraded together.
#
# The build stage runs the same `make build` as developers and CI, so it is exercised
# outside Docker too. giouring needs -checklinkname=0, which the Makefile sets.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 make build
# Gateway ports below 1024 as the non-root user: a non-root container process gets the
# NET_BIND_SERVICE capability the chart adds only through a file capability (Kubernetes
# sets no ambient capabilities). distroless has no setcap, so set it here; BuildKit's
# COPY --from keeps the security.capability extended attribute (the legacy builder
# does not: build with BuildKit, the default since Docker 23).
RUN (command -v setcap >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends libcap2-bin)) \
	&& setcap cap_net_bind_service=+ep bin/flax-dataplane \
	&& getcap bin/flax-dataplane | grep -q cap_net_bind_service

# Static binaries on a minimal non-root base.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/flax-dataplane /src/bin/flax-controller /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/flax-dataplane"]
