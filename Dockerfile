# The project image: a static `dnsdhcp` binary on an empty base.
# In the Helm chart it runs the init containers (copy-dnsdhcp, init-zones, init-kea-leases); the
# copy it puts into the pod's shared emptyDir is what knot-auth's postStart hook and the backup and
# restore commands run inside the Knot and Kea containers.
#
#   docker build -t REGISTRY/dnsdhcp:0.1.0 .
#
# Builds for x86_64 (ISC's Kea images are amd64 only); static with musl.

FROM rust:1.95-bookworm AS build
ARG TARGET=x86_64-unknown-linux-musl
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools cmake \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$TARGET"
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target "$TARGET" -p dnsdhcp \
 && install -D -m 0755 "target/$TARGET/release/dnsdhcp" /out/usr/local/bin/dnsdhcp \
 && install -d -m 1777 /out/tmp

FROM scratch
COPY --from=build /out/ /
# Any uid works: the chart sets the user of every container.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/dnsdhcp"]
