#!/usr/bin/env bash
# Regenerates the Go code of the dataplane API (api/dataplane/v1/*.pb.go) from its
# .proto files. The generated files are committed; run this after editing a .proto.
#
# Needs protoc (3.21 or newer) on PATH, or in $PROTOC (Debian: protobuf-compiler).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="$root/bin"
protoc="${PROTOC:-protoc}"

# The Go plugins are pinned in hack/tools/install.sh, which builds them when missing.
hack/tools/install.sh protoc-gen-go protoc-gen-go-grpc >&2

# The well-known types (google/protobuf/duration.proto) ship with protoc; Debian puts
# them in /usr/include.
includes=(-I "$root")
for dir in "${PROTOC_INCLUDE:-}" /usr/include /usr/local/include; do
	if [[ -n "$dir" && -f "$dir/google/protobuf/duration.proto" ]]; then
		includes+=(-I "$dir")
		break
	fi
done

"$protoc" "${includes[@]}" \
	--plugin=protoc-gen-go="$bin/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
	--go_out="$root" --go_opt=paths=source_relative \
	--go-grpc_out="$root" --go-grpc_opt=paths=source_relative \
	api/dataplane/v1/snapshot.proto \
	api/dataplane/v1/rpc/service.proto

echo "generated: $(cd "$root" && ls api/dataplane/v1/*.pb.go api/dataplane/v1/rpc/*.pb.go | tr '\n' ' ')" >&2
