# flagrelay's container image. Built on Debian bookworm with the project's own dependency list
# (scripts/install-deps), run on bookworm-slim with only the shared libraries the binary links.
#   docker build -t flagrelay:0.1.0 .
#   docker run --rm -p 8030:8030 -p 8031:8031 flagrelay:0.1.0      # serves examples/flags.json
# tests/node/helm/image.test.mjs keeps this file consistent with the chart and the binary
# (there is no Docker engine where the tests run). docs/kubernetes.md#the-image.

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt ./
COPY cmake cmake
COPY config config
COPY cache cache
COPY metrics metrics
COPY relay relay
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DFLAGRELAY_BUILD_TESTS=OFF \
      -DFLAGRELAY_BUILD_BENCH=OFF \
 && cmake --build build --target flagrelay -j"$(nproc)" \
 && strip --strip-unneeded build/relay/flagrelay

FROM debian:bookworm-slim
# The packages of the libraries `ldd flagrelay` lists (found with dpkg -S; the image test
# checks the list against the binary), and the CA store for https upstreams.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libboost-json1.81.0 \
      libboost-url1.81.0 \
      libc6 \
      libgcc-s1 \
      liblmdb0 \
      libprometheus-cpp-core1.0 \
      libssl3 \
      libstdc++6 \
      libyaml-cpp0.7 \
      zlib1g \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid, the chart's runAsUser/runAsGroup/fsGroup, owning the cache directory.
RUN groupadd --system --gid 10001 flagrelay \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin flagrelay \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/flagrelay
COPY --from=build /src/build/relay/flagrelay /usr/local/bin/flagrelay
# The default config serves the example flags offline; the chart mounts its ConfigMap over
# /etc/flagrelay.
COPY examples/container.yaml /etc/flagrelay/config.yaml
COPY examples/flags.json /usr/share/flagrelay/flags.json
USER 10001:10001
# SDKs (listen.port) and /metrics (metrics.port).
EXPOSE 8030 8031
# Arguments replace CMD: `docker run IMAGE --check-config /etc/flagrelay/config.yaml`.
ENTRYPOINT ["/usr/local/bin/flagrelay"]
CMD ["--config", "/etc/flagrelay/config.yaml"]
