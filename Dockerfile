# Switchyard image: the extproc gateway server and the mock LLM upstream,
# static binaries on a distroless base. docker-compose.yaml runs both from it.

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

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/run/switchyard/ /run/switchyard/
ENV PATH=/usr/local/bin:/usr/bin:/bin
USER 65532:65532
# The compose services choose the binary: `extproc ...` or `mockllm ...`.
CMD ["extproc", "-help"]
