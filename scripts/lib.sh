# Shared helpers for palm's scripts (sourced, not run).

# Puts Swift on PATH (it lives in /opt/swift on palm's build machines) or explains what is missing.
ensure_toolchain() {
  if ! command -v swift >/dev/null 2>&1; then
    for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
      [ -x "$d/swift" ] && export PATH="$d:$PATH" && break
    done
  fi
  command -v swift >/dev/null 2>&1 || {
    echo "palm: Swift 6 is required (expected at /opt/swift/usr/bin/swift); see README.md" >&2
    exit 1
  }
}
