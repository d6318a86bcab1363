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

# Static binaries on a minimal non-root base.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/flax-dataplane /src/bin/flax-controller /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/flax-dataplane"]
