# Sourced by the ensure*.sh scripts: what they share about building a tool once into a cache outside
# the repository. A script sets out_dir (keyed by version and by what it builds from), defines
# complete (is $out_dir usable?) and build (fill the directory given as $1), then calls
#   cached_build "what is built" "how long it takes"
# which prints the directory on stdout; everything else goes to stderr.

cache_root=${BACKUPGUARD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backupguard/tools}

cached_build() {
  local what=$1 duration=$2
  if complete; then
    echo "$out_dir"
    return 0
  fi
  mkdir -p "$cache_root"
  # One build at a time, even when make test and make demo start together.
  exec 9>"$cache_root/.lock"
  flock 9
  if complete; then
    echo "$out_dir"
    return 0
  fi
  echo ">> building $what into $out_dir" >&2
  echo ">> this happens once per version and takes $duration; later runs reuse it" >&2
  build_start=$(date +%s)
  # Built aside and moved into place whole, so an interrupted build never looks complete.
  build_dir=$(mktemp -d "$cache_root/.build.XXXXXX")
  trap 'rm -rf "$build_dir"' EXIT
  build "$build_dir"
  touch "$build_dir/.complete"
  rm -rf "$out_dir"
  mv "$build_dir" "$out_dir"
  trap - EXIT
  echo ">> built in $(( $(date +%s) - build_start ))s" >&2
  echo "$out_dir"
}

# go_build_with_progress EVERY ARGS... runs go build -v ARGS; -v names each package as it is
# compiled, and a progress line is printed every EVERY of them.
go_build_with_progress() {
  local every=$1
  shift
  if ! go build -v "$@" 2>&1 | awk -v start="$build_start" -v every="$every" '
      /^(#|go: |.*\.go:[0-9]+)/ { print; next }
      { n++; if (n % every == 0) { printf(">> %d packages compiled (%ds)\n", n, systime() - start); fflush() } }
    ' >&2; then
    echo ">> build failed" >&2
    exit 1
  fi
}

# cached_go_tool DIR MODULE PACKAGE WHAT DURATION [LDFLAGS [TAGS]] builds one command of a module
# pinned in $tools/DIR/go.mod (its `tool` line) into "$cache_root/<binary>-<version>-<go.mod and go.sum
# hash>", where the binary is named after the package's last element, and prints that directory. The
# version is read from go.mod rather than with `go list`, so a cached build is found without Go.
# LDFLAGS may use $version; they and the build TAGS are part of the key too.
cached_go_tool() {
  local dir=$1 module=$2 sum_key
  tool_package=$3 tool_ldflags=${6:-} tool_tags=${7:-}
  tool_binary=${tool_package##*/}
  cd "$tools/$dir"
  sum_key=$( (cat go.mod go.sum; echo "$tool_ldflags"; [ -z "$tool_tags" ] || echo "tags $tool_tags") | sha256sum | cut -c1-12)
  version=$(awk -v m="$module" '$1 == m { print $2; exit }' go.mod)
  out_dir="$cache_root/$tool_binary-$version-$sum_key"
  complete() { [ -f "$out_dir/.complete" ] && [ -x "$out_dir/$tool_binary" ]; }
  build() {
    go_build_with_progress 100 -trimpath -tags "$tool_tags" -ldflags "-s -w ${tool_ldflags//\$version/$version}" -o "$1/$tool_binary" "$tool_package"
  }
  cached_build "$4 $version" "$5"
}
