#!/usr/bin/env bash
# Builds the libFuzzer targets under Fuzz/ with -sanitize=fuzzer,address and
# runs each for a bounded time on its seed corpus (Tests/Fuzz/corpus/NAME).
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh lzop   one target, longer
# A crash leaves its input in fuzz-out/NAME/; turn it into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
seconds="${FUZZ_SECONDS:-20}"
scratch=.build-fuzz
bin="$scratch/x86_64-unknown-linux-gnu/release"

# name -> corpus directory
declare -A targets=(
    [FuzzSizeParser]=size
    [FuzzNTPConf]=ntpconf
    [FuzzLzopDecoder]=lzop
    [FuzzFTPReply]=ftpreply
)
wanted=("$@")
status=0
for target in "${!targets[@]}"; do
    corpus="${targets[$target]}"
    if ((${#wanted[@]})) && [[ ! " ${wanted[*]} " =~ " $corpus " ]]; then continue; fi
    # SwiftPM compiles the objects; its own link adds `--defsym main=...`,
    # which clashes with libFuzzer's main, so link the same objects here.
    RESCUEBOX_FUZZ=1 swift build --scratch-path "$scratch" -c release --product "$target" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library >/dev/null 2>&1 || true
    swiftc -L "$bin" -o "$bin/$target" -module-name "$target" -emit-executable \
        @"$bin/$target.product/Objects.LinkFileList" -sanitize=fuzzer,address -use-ld=lld 2>&1 \
        | grep -v "Cannot export" || true
    [ -x "$bin/$target" ] || { echo "fuzz.sh: $target did not build" >&2; status=1; continue; }
    work="fuzz-out/$corpus"
    mkdir -p "$work/corpus"
    cp -n Tests/Fuzz/corpus/"$corpus"/* "$work/corpus/" 2>/dev/null || true
    echo "fuzz.sh: $target for ${seconds}s"
    if ! (cd "$work" && "../../$bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=0 corpus >"run.log" 2>&1); then
        echo "fuzz.sh: $target FOUND A CRASH OR HANG: see $work/run.log and $work/crash-* / timeout-*" >&2
        tail -30 "$work/run.log" >&2
        status=1
    else
        echo "fuzz.sh: $target: $(grep -E '^Done [0-9]+ runs' "$work/run.log" | tail -1), no crash"
    fi
done
exit $status
