# Switchyard images, from one Dockerfile:
#   docker build -t switchyard:local .                          extproc and the mock LLM upstream,
#                                                                static binaries on a distroless base
#   docker build --target envoy -t switchyard-envoy:local .     Envoy with the body module it loads
# docker-compose.yaml builds and runs both.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so code changes reuse the module cache layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
# GOEXPERIMENT=simd: the body scan skips strings with AVX2 (see the Makefile).
RUN GOEXPERIMENT=simd go build -tags vtprotobuf,grpcnotrace -trimpath -ldflags="-s -w" -o /out/bin/extproc ./cmd/extproc \
 && go build -trimpath -ldflags="-s -w" -o /out/bin/mockllm ./loadtest/cmd/mockllm
# The socket directory is owned by the runtime user, so a named volume
# mounted there starts out writable for extproc.
RUN mkdir -p /out/run/switchyard

# The body module (cmd/bodymodule): a library Envoy loads to summarize a big
# body where it is, so that the body does not travel to extproc. It is C
# and Go against Envoy 1.40's ABI, so it needs cgo and goes with the Envoy
# it was built for; it asks for glibc 2.34 or later (the Envoy image has 2.39).
FROM build AS module
RUN CGO_ENABLED=1 GOEXPERIMENT=simd go build -tags vtprotobuf,grpcnotrace -trimpath -buildmode=c-shared \
      -o /out/lib/libswitchyard_body.so ./cmd/bodymodule

# Envoy as compose and the Kubernetes pod run it: the official image, with
# the module where their bootstraps' -body-module flag names it.
FROM envoyproxy/envoy:v1.40.0 AS envoy
COPY --from=module /out/lib/libswitchyard_body.so /usr/local/lib/switchyard/libswitchyard_body.so

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/run/switchyard/ /run/switchyard/
ENV PATH=/usr/local/bin:/usr/bin:/bin
USER 65532:65532
# The compose services choose the binary: `extproc ...` or `mockllm ...`.
CMD ["extproc", "-help"]
