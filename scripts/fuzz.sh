#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, AddressSanitizer with leak detection) of every decoder that
# takes outside bytes: frames and messages, MEMORY batches (raw and compressed), tickets,
# attestation reports, evidence files, the coordinator's API requests, the TOML configurations,
# the Xen driver's platform description and domain state, a TPM's quotes, keys and measurement logs.
#
#   scripts/fuzz.sh [SECONDS]     run each target SECONDS (default 20) from a copy of its seed
#                                 corpus, after replaying Fuzz/Regressions; exit non-zero on any
#                                 crash, leak or timeout (the reproducer is kept in .build-fuzz/artifacts)
#   scripts/fuzz.sh --seeds       rewrite the committed seed corpus Fuzz/Corpus from real messages
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_toolchain

TARGETS=(FuzzFrames FuzzMemoryBatch FuzzTicket FuzzAttestation FuzzEvidence FuzzCoordinatorRequest FuzzConfig FuzzXenPlatform FuzzPlatformEvidence)
SCRATCH=${PALM_FUZZ_SCRATCH:-.build-fuzz}

if [ "${1:-}" = --seeds ]; then
  swift build --package-path Fuzz --scratch-path "$SCRATCH/plain" --product FuzzSeeds >/dev/null
  rm -rf Fuzz/Corpus
  "$SCRATCH/plain/debug/FuzzSeeds" Fuzz/Corpus .
  exit 0
fi

SECONDS_EACH=${1:-20}
mkdir -p "$SCRATCH"
echo "fuzz: building ${#TARGETS[@]} targets with -sanitize=fuzzer,address"
for t in "${TARGETS[@]}"; do
  # SwiftPM passes its two --sanitize flags to swiftc as two -sanitize= options in no fixed order,
  # and the last one wins: without the combined -Xswiftc option a build is instrumented for
  # coverage or for ASan, depending on the run (the coverage check below catches that).
  # A failed build must not leave an older binary to fuzz: the build's own status decides.
  if ! swift build --package-path Fuzz --scratch-path "$SCRATCH/fuzz" --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address \
       --product "$t" > "$SCRATCH/$t.build.log" 2>&1; then
    grep -E "error" "$SCRATCH/$t.build.log" | head -20; echo "fuzz: $t did not build" >&2; exit 1
  fi
done

mkdir -p "$SCRATCH/artifacts"
export PALM_FUZZ_TMP; PALM_FUZZ_TMP=$(mktemp -d /dev/shm/palm-fuzz.XXXXXX)   # the targets' scratch files
trap 'rm -rf "$PALM_FUZZ_TMP"' EXIT
failed=()
for t in "${TARGETS[@]}"; do
  bin="$SCRATCH/fuzz/debug/$t"
  # Inputs that once crashed stay fixed.
  if [ -d "Fuzz/Regressions/$t" ] && [ -n "$(ls -A "Fuzz/Regressions/$t")" ]; then
    LSAN_OPTIONS=suppressions=$PWD/Fuzz/lsan-suppressions.txt "$bin" -runs=0 "Fuzz/Regressions/$t"/* >"$SCRATCH/$t.regressions.log" 2>&1 || { echo "fuzz: $t: a regression input fails again"; tail -30 "$SCRATCH/$t.regressions.log"; failed+=("$t"); continue; }
  fi
  work="$SCRATCH/corpus/$t"
  rm -rf "$work"; mkdir -p "$work"
  cp Fuzz/Corpus/"$t"/* "$work"/ 2>/dev/null || true
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 LSAN_OPTIONS=suppressions=$PWD/Fuzz/lsan-suppressions.txt "$bin" "$work" -max_total_time="$SECONDS_EACH" -timeout=10 \
       -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$SCRATCH/artifacts/$t-" >"$SCRATCH/$t.log" 2>&1; then
    # A target whose decoder is not instrumented runs blind: libFuzzer then finds nothing and says so.
    if grep -q "no interesting inputs were found\|Is the code instrumented" "$SCRATCH/$t.log"; then
      echo "fuzz: $t: no coverage feedback (the code under test is not instrumented)"; failed+=("$t"); continue
    fi
    echo "fuzz: $t: $(grep -E '^stat::number_of_executed_units' "$SCRATCH/$t.log" | awk '{print $2}') runs in ${SECONDS_EACH} s, coverage $(grep -oE 'cov: [0-9]+' "$SCRATCH/$t.log" | tail -1 | awk '{print $2}') edges, corpus $(ls "$work" | wc -l) inputs, no crash, leak or timeout"
  else
    echo "fuzz: $t FAILED:"
    grep -E "ERROR|SUMMARY|fuzz property|Fatal error|Test unit written" "$SCRATCH/$t.log" | head -20
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]} (reproducers in $SCRATCH/artifacts; add them to Fuzz/Regressions/<target>/ with the fix)"
  exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets clean"
