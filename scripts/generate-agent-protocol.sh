#!/usr/bin/env bash
# Regenerates Sources/AgentProtocol/Generated/*.pb.swift from Sources/AgentProtocol/Proto.
# The generated code is committed: neither CI nor a normal build needs protoc.
#
# Needs protoc (Debian: apt-get install protobuf-compiler) and protoc-gen-swift of the
# same swift-protobuf version as Package.resolved (1.39.0), for example built with
#   git clone --branch 1.39.0 https://github.com/apple/swift-protobuf /tmp/swift-protobuf
#   (cd /tmp/swift-protobuf && swift build -c release --product protoc-gen-swift)
# and passed as PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/release/protoc-gen-swift.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}
[ -x "$plugin" ] || { echo "set PROTOC_GEN_SWIFT to a protoc-gen-swift 1.39.0 binary" >&2; exit 1; }
proto="$root/Sources/AgentProtocol/Proto"
out="$root/Sources/AgentProtocol/Generated"
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" \
  --proto_path="$proto" \
  --swift_out="$out" --swift_opt=Visibility=Public \
  "$proto"/ttrpc.proto "$proto"/health.proto "$proto"/agent.proto
